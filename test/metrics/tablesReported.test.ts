/**
 * `peerdb_mirror_tables` (docs/metrics.md) is the count of tables a mirror last reported, for the
 * mirrors that reported `tables`: a mirror that never did has no series, and one whose last list
 * was empty (`"tables": []`, docs/tables.md: the mirror has no tables) has the series at 0. Written
 * through the batch writer, scraped cold and through the change feed; and migration 0012 on a
 * catalog the previous build filled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { MirrorSnapshots } from '../../src/metrics/snapshot.js';
import { migrate } from '../../src/catalog/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { migrateBefore, writeAsPreviousBuild } from '../helpers/previousCatalog.js';
import { migrateCatalog, write } from '../reads/support.js';
import { type MetricsServer, sample, scrape, startMetricsServer } from './fixtures.js';

let db: TestDatabase;
let server: MetricsServer;
let snapshots: MirrorSnapshots;
let url: string;
const logger = createLogger('silent');
const at = (minute: number) => `2026-12-05T10:${String(minute).padStart(2, '0')}:00Z`;
const tablesOf = async (mirror: string) => sample((await scrape(url)).text, `peerdb_mirror_tables{mirror="${mirror}"}`);

beforeAll(async () => {
  db = await createTestDatabase('metrics_tables_reported');
  await migrateCatalog(db.pool);
  server = await startMetricsServer(db.url);
  ({ url, snapshots } = server);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('peerdb_mirror_tables', () => {
  it('is absent for a mirror that never reported tables, and 0 for one that reported none (cold read)', async () => {
    await write(db.pool, [
      { mirror: 'never', status: 'running', observedAt: at(0), rowsSynced: 5 },
      { mirror: 'none', status: 'running', observedAt: at(0), tables: [] },
      { mirror: 'some', status: 'running', observedAt: at(0), tables: [{ table: 'a' }, { table: 'b' }] },
    ]);
    const { text } = await scrape(url);
    expect(snapshots.lastReadKind).toBe('full');
    expect(sample(text, 'peerdb_mirror_tables{mirror="never"}')).toBeUndefined();
    expect(sample(text, 'peerdb_mirror_tables{mirror="none"}')).toBe('0');
    expect(sample(text, 'peerdb_mirror_tables{mirror="some"}')).toBe('2');
    expect(text).not.toMatch(/^peerdb_mirror_table_[a-z_]+\{mirror="(never|none)"/m);
  });

  it('follows the last list through the change feed: emptied to 0, kept by an update without tables, never reported stays absent', async () => {
    await write(db.pool, [
      { mirror: 'some', status: 'running', observedAt: at(1), tables: [] },
      { mirror: 'never', status: 'paused', observedAt: at(1) },
    ]);
    expect(await tablesOf('some')).toBe('0');
    expect(snapshots.lastReadKind).toBe('feed');
    expect(await tablesOf('never')).toBeUndefined();
    await write(db.pool, [{ mirror: 'some', status: 'paused', observedAt: at(2), rowsSynced: 9 }]);
    expect(await tablesOf('some')).toBe('0');
    await write(db.pool, [{ mirror: 'none', status: 'running', observedAt: at(3), tables: [{ table: 'c' }] }]);
    expect(await tablesOf('none')).toBe('1');
    expect(snapshots.lastReadKind).toBe('feed');
  });
});

describe('migration 0012 on the previous build\'s catalog', () => {
  it('marks the mirrors with tables as having reported them, and no other', async () => {
    const schema = 'before_0012';
    await migrateBefore(db.pool, schema, 12);
    await writeAsPreviousBuild(db.pool, schema, [
      { mirror: 'with_tables', status: 'snapshot', observedAt: at(0) },
      { mirror: 'without', status: 'running', observedAt: at(0) },
    ]);
    await db.pool.query(`insert into ${schema}.mirror_tables (mirror, table_name, snapshot_partitions) values ('with_tables', 't', 3)`);
    await migrate(db.pool, schema, logger);
    const { rows } = await db.pool.query(`select mirror, tables_reported from ${schema}.mirrors order by mirror`);
    expect(rows).toEqual([{ mirror: 'with_tables', tables_reported: true }, { mirror: 'without', tables_reported: false }]);
  });
});
