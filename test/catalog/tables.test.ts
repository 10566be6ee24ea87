/**
 * A mirror's tables in the catalog (docs/tables.md): replaced whole by an applied update that lists
 * them, kept by one that does not, untouched by a stale one or a redelivery, written in the mirror's
 * transaction and read in the mirror's snapshot.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyBatch } from '../../src/catalog/applyBatch.js';
import { migrate } from '../../src/catalog/migrate.js';
import { readMirror } from '../../src/catalog/readMirror.js';
import { clientExecutor } from '../../src/catalog/sql.js';
import { inTransaction } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { parseUpdate, type StateUpdate } from '../../src/update.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { readMirrorNaive } from '../helpers/readMirrorNaive.js';

let db: TestDatabase;
const SCHEMA = 'tables_test';

function u(fields: Record<string, unknown>): StateUpdate {
  const r = parseUpdate({ mirror: 'm', status: 'snapshot', ...fields });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}
const write = (batch: StateUpdate[]) => inTransaction(db.pool, 'begin', (c) => applyBatch(clientExecutor(c), SCHEMA, batch));
/** The catalog's rows of a mirror's tables, as `name:rows:partitionsSynced/partitions`. */
async function tableRows(mirror = 'm'): Promise<string[]> {
  const { rows } = await db.pool.query(
    `select table_name, rows_synced, snapshot_partitions, snapshot_partitions_synced, error_class
       from ${SCHEMA}.mirror_tables where mirror = $1 order by table_name collate "C"`, [mirror]);
  return rows.map((r) => `${r.table_name}:${r.rows_synced ?? '-'}:${r.snapshot_partitions_synced ?? '-'}/${r.snapshot_partitions ?? '-'}${r.error_class ? `!${r.error_class}` : ''}`);
}

beforeAll(async () => {
  db = await createTestDatabase('tables');
  await migrate(db.pool, SCHEMA, createLogger('silent'));
});
afterAll(async () => db?.drop());
beforeEach(async () => {
  await db.pool.query(`truncate ${SCHEMA}.mirrors, ${SCHEMA}.mirror_tables, ${SCHEMA}.transitions, ${SCHEMA}.journal`);
});

describe('a mirror\'s tables', () => {
  it('are replaced whole by an applied update that lists them: a table left out is gone, a field left out unknown', async () => {
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: [
      { table: 'a', rowsSynced: 5, snapshot: { partitions: 4, partitionsSynced: 1 } },
      { table: 'b', rowsSynced: 7, error: { class: 'connection', message: 'x' } },
    ] })]);
    expect(await tableRows()).toEqual(['a:5:1/4', 'b:7:-/-!connection']);

    await write([u({ observedAt: '2026-12-05T10:01:00Z', tables: [{ table: 'b' }, { table: 'c', rowsSynced: 1 }] })]);
    expect(await tableRows()).toEqual(['b:-:-/-', 'c:1:-/-']);
  });

  it('are kept by an applied update without them, and emptied by one listing none', async () => {
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: [{ table: 'a', rowsSynced: 5 }] })]);
    await write([u({ observedAt: '2026-12-05T10:01:00Z', status: 'running', rowsSynced: 99 })]);
    expect(await tableRows()).toEqual(['a:5:-/-']);
    await write([u({ observedAt: '2026-12-05T10:02:00Z', tables: [] })]);
    expect(await tableRows()).toEqual([]);
  });

  it('are not changed by a stale update or a redelivery', async () => {
    const current = u({ observedAt: '2026-12-05T10:05:00Z', tables: [{ table: 'now', rowsSynced: 2 }] });
    await write([current]);
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: [{ table: 'old', rowsSynced: 1 }] })]);
    expect(await tableRows()).toEqual(['now:2:-/-']);
    const { rows: [before] } = await db.pool.query(`select updated_at from ${SCHEMA}.mirror_tables`);
    await write([current]);
    const { rows: [after] } = await db.pool.query(`select updated_at from ${SCHEMA}.mirror_tables`);
    expect(after).toEqual(before);
  });

  it('come from the newest applied update of a batch that lists them, in version order whatever the arrival order', async () => {
    await write([
      u({ observedAt: '2026-12-05T10:03:00Z', status: 'running' }),
      u({ observedAt: '2026-12-05T10:02:00Z', tables: [{ table: 'second', rowsSynced: 2 }] }),
      u({ observedAt: '2026-12-05T10:01:00Z', tables: [{ table: 'first', rowsSynced: 1 }] }),
      u({ mirror: 'other', observedAt: '2026-12-05T10:01:00Z', tables: [{ table: 'x' }] }),
    ]);
    expect(await tableRows()).toEqual(['second:2:-/-']);
    expect(await tableRows('other')).toEqual(['x:-:-/-']);
  });

  it('leave a row whose values an applied set repeats as it was, and rewrite only the one that moved', async () => {
    const set = (rows: number) => [{ table: 'same', rowsSynced: 1, lastSyncedAt: '2026-12-05T09:00:00.000001Z' }, { table: 'moved', rowsSynced: rows }];
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: set(1) })]);
    const versions = async () => (await db.pool.query(`select table_name, xmin::text, updated_at from ${SCHEMA}.mirror_tables order by 1`)).rows;
    const [moved, same] = await versions();
    await write([u({ observedAt: '2026-12-05T10:01:00Z', tables: set(2) })]);
    const [movedAfter, sameAfter] = await versions();
    expect(sameAfter).toEqual(same);
    expect(movedAfter.xmin).not.toEqual(moved.xmin);
    expect(await tableRows()).toEqual(['moved:2:-/-', 'same:1:-/-']);
  });

  it('are written alike when one mirror replaces its set and another reports its first in the same batch', async () => {
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: [{ table: 'a', rowsSynced: 1 }, { table: 'b' }] })]);
    await write([
      u({ observedAt: '2026-12-05T10:01:00Z', tables: [{ table: 'b', rowsSynced: 2 }, { table: 'c' }] }),
      u({ mirror: 'new', observedAt: '2026-12-05T10:01:00Z', tables: [{ table: 'a', rowsSynced: 3 }] }),
      u({ mirror: 'empty', observedAt: '2026-12-05T10:01:00Z', tables: [] }),
    ]);
    expect(await tableRows()).toEqual(['b:2:-/-', 'c:-:-/-']);
    expect(await tableRows('new')).toEqual(['a:3:-/-']);
    const { rows } = await db.pool.query(`select mirror, tables_reported from ${SCHEMA}.mirrors order by 1`);
    expect(rows).toEqual([{ mirror: 'empty', tables_reported: true }, { mirror: 'm', tables_reported: true }, { mirror: 'new', tables_reported: true }]);
  });

  it('keep any name and message as written: quotes, backslashes, braces, commas, spaces, NULL', async () => {
    const names = ['a"b', 'c\\d', '{e,f}', ' g h ', 'NULL', 'null', '\'q\'', 'ü€😀', '"', '\\'];
    const message = 'line 1\nline "2" \\ {x, y} NULL';
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: names.map((table) => ({ table, error: { class: 'c', message } })) })]);
    const { rows } = await db.pool.query(`select table_name, error_message from ${SCHEMA}.mirror_tables order by table_name collate "C"`);
    expect(rows).toEqual([...names].sort().map((table_name) => ({ table_name, error_message: message })));
  });

  it('of a mirror that has not reported tables are inserted as new: rows it should not have fail the batch, none is kept', async () => {
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: [{ table: 'a', rowsSynced: 1 }] })]);
    // A broken catalog: rows for a mirror that says it never reported tables (nothing writes this).
    await db.pool.query(`update ${SCHEMA}.mirrors set tables_reported = false`);
    await expect(write([u({ observedAt: '2026-12-05T10:01:00Z', tables: [{ table: 'a', rowsSynced: 2 }] })])).rejects.toMatchObject({ code: '23505' });
    expect(await tableRows()).toEqual(['a:1:-/-']);
  });

  it('stay in the catalog when the mirror is dropped', async () => {
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: [{ table: 'a' }] })]);
    await write([u({ observedAt: '2026-12-05T10:01:00Z', status: 'terminated', dropped: true })]);
    expect(await tableRows()).toEqual(['a:-:-/-']);
  });

  it('are answered with the mirror, whole and by name', async () => {
    await write([u({ observedAt: '2026-12-05T10:00:00Z', tables: [
      { table: 'z', lastSyncedAt: '2026-12-05T09:00:00.5Z', snapshot: { rowsSynced: 3, startedAt: '2026-12-05T08:00:00Z' } },
      { table: 'a', error: { message: 'm' } },
    ] })]);
    const detail = await readMirror(db.pool, SCHEMA, 'm', { events: 0 });
    expect(detail?.tables.map(({ updatedAt: _, ...t }) => t)).toEqual([
      { table: 'a', rowsSynced: null, lastSyncedAt: null, snapshot: null, error: { class: 'unknown', message: 'm' } },
      {
        table: 'z', rowsSynced: null, lastSyncedAt: '2026-12-05T09:00:00.500000Z',
        snapshot: { partitions: null, partitionsSynced: null, rowsSynced: 3, startedAt: '2026-12-05T08:00:00.000000Z', finishedAt: null },
        error: null,
      },
    ]);
  });
});

describe('one snapshot', () => {
  /**
   * A writer publishes updates whose mirror rowsSynced always equals the sum of its tables' rows,
   * each in one transaction. A reader of the mirror with its tables must always see the two agree;
   * a reader that takes them in two statements (the naive control, with a commit between them)
   * must be seen not to. Counted over a fixed number of reads and writes, not a time window: a
   * loaded machine makes it slower, not different.
   */
  let version = 0;
  async function writeVersion() {
    version++;
    const tables = Array.from({ length: 1 + (version % 5) }, (_, i) => ({ table: `t${i}`, rowsSynced: version }));
    const at = new Date(Date.parse('2026-12-05T10:00:00Z') + version * 1000).toISOString();
    await write([u({ observedAt: at, rowsSynced: version * tables.length, tables })]);
  }
  async function race(read: (mirror: string) => Promise<{ rowsSynced: number | null; tableSum: number } | undefined>, concurrentWrites = true) {
    await writeVersion();
    const first = version;
    let reading = true;
    const writer = (async () => {
      while (concurrentWrites && (reading || version - first < 100)) await writeVersion();
    })();
    let reads = 0;
    let skewed = 0;
    try {
      for (; reads < 300; reads++) {
        const seen = await read('m');
        if (seen && seen.rowsSynced !== seen.tableSum) skewed++;
      }
    } finally {
      reading = false;
      await writer;
    }
    return { reads, skewed, writes: version - first };
  }
  const sum = (d: { mirror: { rowsSynced: number | null }; tables: { rowsSynced: number | null }[] } | undefined) =>
    d && { rowsSynced: d.mirror.rowsSynced, tableSum: d.tables.reduce((n, t) => n + (t.rowsSynced ?? 0), 0) };

  it('pairs a mirror with its own tables, never another commit\'s, while a per-statement reader does not', async () => {
    const snapshot = await race(async (m) => sum(await readMirror(db.pool, SCHEMA, m, { events: 0 })));
    expect(snapshot.skewed).toBe(0);
    expect(snapshot.writes).toBeGreaterThanOrEqual(100);
    // The control: the same check fails a reader that reads the tables in a statement of their own
    // whenever a commit lands between its statements.
    const naive = await race(async (m) => sum(await readMirrorNaive(db.pool, SCHEMA, m, { events: 0, between: writeVersion })), false);
    expect(naive.skewed).toBe(naive.reads);
  });
});
