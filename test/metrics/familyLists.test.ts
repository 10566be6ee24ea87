/**
 * Allow and deny lists on /metrics: a denied family is absent from the exposition and its column
 * is not read. The read's SQL is logged by the test database's server (log_statement = all, on
 * this database only) and the log searched; and the select list the reader builds is checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { MIRROR_FAMILIES, selectFamilies } from '../../src/metrics/families.js';
import { parseFamilyPatterns } from '../../src/metrics/familyPatterns.js';
import { mirrorRowColumns } from '../../src/metrics/readMirrorRows.js';
import { MirrorSnapshots } from '../../src/metrics/snapshot.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type MetricsServer, mirrorPart, putMirror, scrape, startMetricsServer } from './fixtures.js';

const SCHEMA = 'mirrorstate';
let db: TestDatabase;
const servers: MetricsServer[] = [];

function patterns(raw: string): RegExp[] {
  const parsed = parseFamilyPatterns(raw);
  if (!Array.isArray(parsed)) throw new Error(parsed.error);
  return parsed;
}

async function serve(allow: string | undefined, deny: string | undefined): Promise<{ url: string; snapshots: MirrorSnapshots }> {
  const families = selectFamilies(allow === undefined ? undefined : patterns(allow), deny === undefined ? undefined : patterns(deny));
  const server = await startMetricsServer(db.url, { families });
  servers.push(server);
  return server;
}

beforeAll(async () => {
  db = await createTestDatabase('metrics_family_lists');
  await migrate(db.pool, SCHEMA, createLogger('silent'));
  await putMirror(db.pool, SCHEMA, {
    mirror: 'm1', status: 'running', statusSince: '2026-11-21T10:00:00Z', observedAt: '2026-11-21T10:05:00Z',
    rowsSynced: 7, lagSeconds: 1.5, slotLagBytes: 99, transitionsTotal: 2,
  });
  await db.pool.query(`insert into "${SCHEMA}".mirror_tables (mirror, table_name, rows_synced) values ('m1', 't1', 5)`);
  await db.pool.query(`update "${SCHEMA}".mirrors set tables_reported = true where mirror = 'm1'`);
});

afterAll(async () => {
  for (const s of servers) await s.stop();
  await db?.drop();
});

describe('metric allow and deny lists', () => {
  it('serve exactly the allowed families, and read only their columns', async () => {
    const { url, snapshots } = await serve('peerdb_mirror_lag_seconds,peerdb_mirror_table_rows_synced_total', undefined);
    expect(snapshots.families.map((f) => f.name)).toEqual(['peerdb_mirror_lag_seconds', 'peerdb_mirror_table_rows_synced_total']);
    const { text } = await scrape(url);
    expect(mirrorPart(text)).toBe(
      '# HELP peerdb_mirror_lag_seconds Replication lag of the mirror, as last reported by its workers (only mirrors that reported it).\n' +
      '# TYPE peerdb_mirror_lag_seconds gauge\n' +
      'peerdb_mirror_lag_seconds{mirror="m1"} 1.5\n' +
      '# HELP peerdb_mirror_table_rows_synced_total Rows synced into the table, as last reported (only tables that reported it).\n' +
      '# TYPE peerdb_mirror_table_rows_synced_total counter\n' +
      'peerdb_mirror_table_rows_synced_total{mirror="m1",table="t1"} 5\n',
    );
    // The daemon's own families stay.
    expect(text).toContain('# TYPE mirrorstate_catalog_up gauge\nmirrorstate_catalog_up 1\n');
    expect(text).toContain('process_cpu_user_seconds_total');
    for (const column of ['as rows_synced', 'slot_lag_bytes', 'status_since', 'flow_type', ', error_class', 'transitions_total']) {
      expect(snapshots.columns).not.toContain(column);
    }
    expect(snapshots.columns).toMatch(/lag_seconds/);
  });

  it('a denied family is absent and not read; denying every per-table family leaves the tables unread', async () => {
    const { url, snapshots } = await serve(undefined, 'peerdb_mirror_table_.*,peerdb_mirror_tables,peerdb_mirror_slot_lag_bytes');
    const { text } = await scrape(url);
    expect(text).not.toMatch(/peerdb_mirror_table|peerdb_mirror_slot_lag_bytes/);
    expect(text).toContain('peerdb_mirror_rows_synced_total{mirror="m1"} 7\n');
    expect(snapshots.columns).not.toContain('mirror_tables');
    expect(snapshots.columns).not.toContain('slot_lag_bytes');
    // All on: the same builder reads them (so the checks above can fail).
    const all = mirrorRowColumns(SCHEMA, MIRROR_FAMILIES);
    expect(all).toContain('mirror_tables');
    expect(all).toContain('slot_lag_bytes');
  });

  it('with the per-table families denied, peerdb_mirror_tables counts the tables without reading them', async () => {
    await db.pool.query(`insert into "${SCHEMA}".mirror_tables (mirror, table_name) values ('m1', 't2'), ('m1', 't3')`);
    try {
      const { url, snapshots } = await serve(undefined, 'peerdb_mirror_table_.*');
      const { text } = await scrape(url);
      expect(text).toContain('peerdb_mirror_tables{mirror="m1"} 3\n');
      expect(text).not.toMatch(/peerdb_mirror_table_/);
      // Counted in the same statement; no table's values are read, aggregated or parsed.
      expect(snapshots.columns).toContain('count(*)');
      expect(snapshots.columns).not.toContain('json_agg');
      expect(mirrorRowColumns(SCHEMA, MIRROR_FAMILIES)).toContain('json_agg');
    } finally {
      await db.pool.query(`delete from "${SCHEMA}".mirror_tables where mirror = 'm1' and table_name <> 't1'`);
    }
  });

  it('the server runs what the builder built: a denied column is in no statement of the scrape', async () => {
    const { url, snapshots } = await serve(undefined, 'peerdb_mirror_table_.*,peerdb_mirror_tables');
    // pg_stat_activity's query of our own snapshot pool's connections is the statement each last ran.
    const seen = new Set<string>();
    const watcher = setInterval(() => {
      void db.pool.query<{ query: string }>(
        `select query from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and query like '%version%'`,
      ).then(({ rows }) => rows.forEach((r) => seen.add(r.query)), () => undefined);
    }, 1);
    try {
      for (let i = 0; i < 20; i++) {
        await db.pool.query(`update "${SCHEMA}".mirrors set updated_at = clock_timestamp() where mirror = 'm1'`);
        await scrape(url);
      }
    } finally {
      clearInterval(watcher);
    }
    expect(snapshots.reads).toBeGreaterThan(0);
    expect([...seen].some((q) => q.includes('as version'))).toBe(true);
    for (const q of seen) expect(q).not.toContain('mirror_tables');
  });
});
