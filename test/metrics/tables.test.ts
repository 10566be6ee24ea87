/**
 * /metrics' per-table families and the slot sample's families, exactly: a catalog written as the
 * batch writer leaves it (the mirror's row and its tables in one transaction), hostile table names,
 * both formats, promtool's verdict, and a change to one mirror's tables re-rendering that mirror only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { MIRROR_FAMILIES } from '../../src/metrics/families.js';
import { MirrorSnapshots } from '../../src/metrics/snapshot.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { promtoolCheckMetrics } from '../helpers/prometheus.js';
import { type MetricsServer, mirrorPart, putMirror, scrape, startMetricsServer } from './fixtures.js';

const SCHEMA = 'mirrorstate';
const A = 'a_cdc';
const B = 'b_plain';
const C = 'c_gone';
const HOSTILE = 'public."we\\ird"\nname';
const HOSTILE_L = 'public.\\"we\\\\ird\\"\\nname';

let db: TestDatabase;
let server: MetricsServer;
let snapshots: MirrorSnapshots;
let url: string;

interface TableFixture {
  table: string;
  rowsSynced?: number | string;
  lastSyncedAt?: string;
  partitions?: number;
  partitionsSynced?: number;
  snapshotRows?: number;
  errorClass?: string;
}

/** As the batch writer does: the mirror's row is rewritten with its tables (and says it reported some), in one transaction. */
async function putTables(mirror: string, list: TableFixture[], observedAt: string): Promise<void> {
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    await client.query(`update "${SCHEMA}".mirrors set observed_at = $2::timestamptz, tables_reported = true, updated_at = clock_timestamp() where mirror = $1`, [mirror, observedAt]);
    await client.query(`delete from "${SCHEMA}".mirror_tables where mirror = $1`, [mirror]);
    for (const t of list) {
      await client.query(
        `insert into "${SCHEMA}".mirror_tables (mirror, table_name, rows_synced, last_synced_at, snapshot_partitions,
           snapshot_partitions_synced, snapshot_rows_synced, error_class, error_message)
         values ($1, $2, $3, $4::timestamptz, $5, $6, $7, $8, case when $8::text is not null then 'boom' end)`,
        [mirror, t.table, t.rowsSynced ?? null, t.lastSyncedAt ?? null, t.partitions ?? null, t.partitionsSynced ?? null,
          t.snapshotRows ?? null, t.errorClass ?? null],
      );
    }
    await client.query('commit');
  } finally {
    client.release();
  }
}

beforeAll(async () => {
  db = await createTestDatabase('metrics_tables');
  const logger = createLogger('silent');
  await migrate(db.pool, SCHEMA, logger);
  for (const mirror of [A, B, C]) {
    await putMirror(db.pool, SCHEMA, { mirror, status: 'snapshot', statusSince: '2026-11-21T10:00:00Z', observedAt: '2026-11-21T10:00:00Z', transitionsTotal: 1 });
  }
  await db.pool.query(
    `update "${SCHEMA}".mirrors set slot_lag_sampled_at = '2026-11-21T10:04:59.25Z', slot_wal_status = 'extended' where mirror = $1`, [A],
  );
  await putTables(A, [
    { table: 'public.orders', rowsSynced: '9007199254740993', lastSyncedAt: '2026-11-21T10:05:00.000001Z', partitions: 10, partitionsSynced: 4, snapshotRows: 400 },
    { table: HOSTILE, errorClass: 'bad "class"' },
  ], '2026-11-21T10:05:00Z');
  await putTables(C, [{ table: 't1', rowsSynced: 1 }], '2026-11-21T10:05:00Z');
  await db.pool.query(`update "${SCHEMA}".mirrors set dropped_at = now() where mirror = $1`, [C]);
  server = await startMetricsServer(db.url);
  ({ url, snapshots } = server);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** The part of the exposition from `first`'s HELP line to the line before `next`'s. */
function section(text: string, first: string, next: string): string {
  const part = mirrorPart(text);
  const start = part.indexOf(`# HELP ${first} `);
  const end = part.indexOf(`# HELP ${next} `);
  return part.slice(start, end);
}

function expected(format: 'text' | 'openmetrics'): string {
  const counter = (name: string) => (format === 'openmetrics' ? name.replace(/_total$/, '') : name);
  return (
    '# HELP peerdb_mirror_tables Tables the mirror last reported (only mirrors that reported tables).\n' +
    '# TYPE peerdb_mirror_tables gauge\n' +
    `peerdb_mirror_tables{mirror="${A}"} 2\n` +
    `# HELP ${counter('peerdb_mirror_table_rows_synced_total')} Rows synced into the table, as last reported (only tables that reported it).\n` +
    `# TYPE ${counter('peerdb_mirror_table_rows_synced_total')} counter\n` +
    `peerdb_mirror_table_rows_synced_total{mirror="${A}",table="public.orders"} 9007199254740993\n` +
    '# HELP peerdb_mirror_table_last_synced_timestamp_seconds When the table last synced, in Unix seconds, as last reported (only tables that reported it).\n' +
    '# TYPE peerdb_mirror_table_last_synced_timestamp_seconds gauge\n' +
    `peerdb_mirror_table_last_synced_timestamp_seconds{mirror="${A}",table="public.orders"} 1795255500.000001\n` +
    "# HELP peerdb_mirror_table_snapshot_partitions Partitions of the table's initial load (only tables that reported it).\n" +
    '# TYPE peerdb_mirror_table_snapshot_partitions gauge\n' +
    `peerdb_mirror_table_snapshot_partitions{mirror="${A}",table="public.orders"} 10\n` +
    "# HELP peerdb_mirror_table_snapshot_partitions_synced Partitions of the table's initial load synced so far (only tables that reported it).\n" +
    '# TYPE peerdb_mirror_table_snapshot_partitions_synced gauge\n' +
    `peerdb_mirror_table_snapshot_partitions_synced{mirror="${A}",table="public.orders"} 4\n` +
    "# HELP peerdb_mirror_table_snapshot_rows_synced Rows the table's initial load synced so far (only tables that reported it).\n" +
    '# TYPE peerdb_mirror_table_snapshot_rows_synced gauge\n' +
    `peerdb_mirror_table_snapshot_rows_synced{mirror="${A}",table="public.orders"} 400\n` +
    "# HELP peerdb_mirror_table_error 1 while the table's last report carries an error, labelled with its class; absent otherwise.\n" +
    '# TYPE peerdb_mirror_table_error gauge\n' +
    `peerdb_mirror_table_error{mirror="${A}",table="${HOSTILE_L}",class="bad \\"class\\""} 1\n` +
    (format === 'openmetrics' ? '# EOF\n' : '')
  );
}

describe('per-table and slot sample families', () => {
  it.each(['text', 'openmetrics'] as const)('are exact in %s format; dropped mirrors\' tables leave with them', async (format) => {
    const accept = format === 'openmetrics' ? 'application/openmetrics-text; version=1.0.0' : 'text/plain';
    const { text } = await scrape(url, { accept });
    const part = mirrorPart(text);
    expect(part.slice(part.indexOf('# HELP peerdb_mirror_tables '))).toBe(expected(format));
    expect(section(text, 'peerdb_mirror_slot_lag_sample_timestamp_seconds', 'peerdb_mirror_error')).toBe(
      '# HELP peerdb_mirror_slot_lag_sample_timestamp_seconds When the reported slot lag was measured, in Unix seconds (only mirrors that reported it).\n' +
      '# TYPE peerdb_mirror_slot_lag_sample_timestamp_seconds gauge\n' +
      `peerdb_mirror_slot_lag_sample_timestamp_seconds{mirror="${A}"} 1795255499.25\n` +
      "# HELP peerdb_mirror_slot_wal_status WAL status of the mirror's source replication slot as a state set: 1 for the reported one, 0 for each of the other 3 (only mirrors that reported it).\n" +
      '# TYPE peerdb_mirror_slot_wal_status gauge\n' +
      `peerdb_mirror_slot_wal_status{mirror="${A}",wal_status="reserved"} 0\n` +
      `peerdb_mirror_slot_wal_status{mirror="${A}",wal_status="extended"} 1\n` +
      `peerdb_mirror_slot_wal_status{mirror="${A}",wal_status="unreserved"} 0\n` +
      `peerdb_mirror_slot_wal_status{mirror="${A}",wal_status="lost"} 0\n`,
    );
    expect(text).not.toContain(C);
  });

  it('prints each of these families with exactly the labels its declaration names, in that order', async () => {
    const { text } = await scrape(url);
    const ours = MIRROR_FAMILIES.filter((f) => /^peerdb_mirror_(tables$|table_|slot_lag_sample|slot_wal)/.test(f.name));
    expect(ours).toHaveLength(9);
    for (const family of ours) {
      const lines = text.split('\n').filter((line) => line.startsWith(`${family.name}{`));
      expect(lines.length, family.name).toBeGreaterThan(0);
      for (const line of lines) {
        const names = [...line.slice(family.name.length).matchAll(/[{,]([a-z_]+)="(?:[^"\\]|\\.)*"/g)].map((m) => m[1]);
        expect(names, line).toEqual(family.labels);
      }
    }
  });

  it('passes promtool check metrics', async () => {
    const { text } = await scrape(url);
    const ours = promtoolCheckMetrics(text).filter((p) => /^(mirrorstate_|peerdb_)/.test(p) || !/^[a-z_]+ /.test(p));
    expect(ours).toEqual([]);
  });

  it('a change to one mirror\'s tables re-renders that mirror, not the fleet', async () => {
    await scrape(url); // warm
    await putTables(B, [{ table: 'only', partitions: 3, partitionsSynced: 3 }], '2026-11-21T10:06:00Z');
    const { text } = await scrape(url);
    expect(snapshots.lastReadKind).toBe('feed');
    expect(snapshots.lastRendered).toBe(1);
    expect(text).toContain(`peerdb_mirror_tables{mirror="${B}"} 1\n`);
    expect(text).toContain(`peerdb_mirror_table_snapshot_partitions_synced{mirror="${B}",table="only"} 3\n`);
    expect(text).toContain(`peerdb_mirror_tables{mirror="${A}"} 2\n`);
  });
});
