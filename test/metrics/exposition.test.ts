/**
 * /metrics exposition text, exactly: a small catalog with awkward names and values, in both
 * formats; the text cache; dropped mirrors; the scrape-timeout rule; and promtool's verdict.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { escapeLabelValue, negotiateFormat } from '../../src/metrics/exposition.js';
import { epoch, MIRROR_FAMILIES } from '../../src/metrics/families.js';
import { readBudgetMs } from '../../src/metrics/route.js';
import { MirrorSnapshots } from '../../src/metrics/snapshot.js';
import { waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { promtoolCheckMetrics } from '../helpers/prometheus.js';
import { type MetricsServer, mirrorPart, putMirror, sample, scrape, startMetricsServer } from './fixtures.js';

const SCHEMA = 'mirrorstate';
const STATUSES = ['unknown', 'running', 'paused', 'pausing', 'setup', 'snapshot', 'terminating', 'terminated', 'completed', 'resync', 'failed', 'modifying'];

const ORDERS = 'orders_cdc';
const AWKWARD = 'quote"back\\slash';
const EMOJI = 'émoji 🚀 with spaces';

let db: TestDatabase;
let server: MetricsServer;
let snapshots: MirrorSnapshots;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase('metrics_exposition');
  const logger = createLogger('silent');
  await migrate(db.pool, SCHEMA, logger);
  await putMirror(db.pool, SCHEMA, {
    mirror: ORDERS, status: 'running', statusSince: '2026-11-21T10:00:00.123456Z', observedAt: '2026-11-21T10:05:00.5Z',
    seq: 3, workflowId: 'wf-1', flowType: 'cdc', source: 'pg_src', destination: 'sf_dst', rowsSynced: 1200,
    lagSeconds: 2.25, slotLagBytes: 8_589_934_592, transitionsTotal: 2,
  });
  await putMirror(db.pool, SCHEMA, {
    mirror: AWKWARD, status: 'failed', statusSince: '2026-11-21T09:00:00Z', observedAt: '2026-11-21T11:00:00.000001Z',
    workflowId: 'wf\n"2"\\', errorClass: 'conn_refused', errorMessage: 'line one\nline "two"', transitionsTotal: 3,
  });
  await putMirror(db.pool, SCHEMA, {
    mirror: EMOJI, status: 'paused', statusSince: '2026-11-21T09:00:00Z', observedAt: '2026-11-21T09:00:00Z',
    flowType: 'qrep', rowsSynced: 0, lagSeconds: 0,
  });
  await putMirror(db.pool, SCHEMA, {
    mirror: 'dropped_one', status: 'terminated', statusSince: '2026-11-21T09:00:00Z', observedAt: '2026-11-21T09:00:00Z',
    dropped: true, rowsSynced: 5,
  });
  server = await startMetricsServer(db.url);
  ({ url, snapshots } = server);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const statusLines = (m: string, current: string) =>
  STATUSES.map((s) => `peerdb_mirror_status{mirror="${m}",status="${s}"} ${s === current ? 1 : 0}\n`).join('');

// Label values as the exposition writes them: \ → \\, " → \", line feed → \n.
const ORDERS_L = 'orders_cdc';
const AWKWARD_L = String.raw`quote\"back\\slash`;
const EMOJI_L = 'émoji 🚀 with spaces';

function expectedMirrorPart(format: 'text' | 'openmetrics'): string {
  const counter = (name: string) => (format === 'openmetrics' ? name.replace(/_total$/, '') : name);
  return (
    '# HELP peerdb_mirror_status Current status of the mirror as a state set: 1 for the current status, 0 for each of the other 11.\n' +
    '# TYPE peerdb_mirror_status gauge\n' +
    statusLines(ORDERS_L, 'running') +
    statusLines(AWKWARD_L, 'failed') +
    statusLines(EMOJI_L, 'paused') +
    (format === 'openmetrics'
      ? '# HELP peerdb_mirror_info Always 1: the mirror\'s flow type, source and destination peers and workflow id (\\"\\" when unknown).\n'
      : '# HELP peerdb_mirror_info Always 1: the mirror\'s flow type, source and destination peers and workflow id ("" when unknown).\n') +
    '# TYPE peerdb_mirror_info gauge\n' +
    `peerdb_mirror_info{mirror="${ORDERS_L}",flow_type="cdc",source="pg_src",destination="sf_dst",workflow_id="wf-1"} 1\n` +
    `peerdb_mirror_info{mirror="${AWKWARD_L}",flow_type="",source="",destination="",workflow_id="wf\\n\\"2\\"\\\\"} 1\n` +
    `peerdb_mirror_info{mirror="${EMOJI_L}",flow_type="qrep",source="",destination="",workflow_id=""} 1\n` +
    '# HELP peerdb_mirror_status_since_timestamp_seconds When the mirror entered its current status (observedAt of that transition), in Unix seconds.\n' +
    '# TYPE peerdb_mirror_status_since_timestamp_seconds gauge\n' +
    `peerdb_mirror_status_since_timestamp_seconds{mirror="${ORDERS_L}"} 1795255200.123456\n` +
    `peerdb_mirror_status_since_timestamp_seconds{mirror="${AWKWARD_L}"} 1795251600\n` +
    `peerdb_mirror_status_since_timestamp_seconds{mirror="${EMOJI_L}"} 1795251600\n` +
    '# HELP peerdb_mirror_last_update_timestamp_seconds observedAt of the newest applied update of the mirror, in Unix seconds.\n' +
    '# TYPE peerdb_mirror_last_update_timestamp_seconds gauge\n' +
    `peerdb_mirror_last_update_timestamp_seconds{mirror="${ORDERS_L}"} 1795255500.5\n` +
    `peerdb_mirror_last_update_timestamp_seconds{mirror="${AWKWARD_L}"} 1795258800.000001\n` +
    `peerdb_mirror_last_update_timestamp_seconds{mirror="${EMOJI_L}"} 1795251600\n` +
    `# HELP ${counter('peerdb_mirror_status_transitions_total')} Status transitions recorded for the mirror.\n` +
    `# TYPE ${counter('peerdb_mirror_status_transitions_total')} counter\n` +
    `peerdb_mirror_status_transitions_total{mirror="${ORDERS_L}"} 2\n` +
    `peerdb_mirror_status_transitions_total{mirror="${AWKWARD_L}"} 3\n` +
    `peerdb_mirror_status_transitions_total{mirror="${EMOJI_L}"} 1\n` +
    `# HELP ${counter('peerdb_mirror_rows_synced_total')} Rows synced by the mirror, as last reported by its workers (only mirrors that reported it).\n` +
    `# TYPE ${counter('peerdb_mirror_rows_synced_total')} counter\n` +
    `peerdb_mirror_rows_synced_total{mirror="${ORDERS_L}"} 1200\n` +
    `peerdb_mirror_rows_synced_total{mirror="${EMOJI_L}"} 0\n` +
    '# HELP peerdb_mirror_lag_seconds Replication lag of the mirror, as last reported by its workers (only mirrors that reported it).\n' +
    '# TYPE peerdb_mirror_lag_seconds gauge\n' +
    `peerdb_mirror_lag_seconds{mirror="${ORDERS_L}"} 2.25\n` +
    `peerdb_mirror_lag_seconds{mirror="${EMOJI_L}"} 0\n` +
    '# HELP peerdb_mirror_slot_lag_bytes WAL bytes the source replication slot of the mirror holds back, as last reported (only mirrors that reported it).\n' +
    '# TYPE peerdb_mirror_slot_lag_bytes gauge\n' +
    `peerdb_mirror_slot_lag_bytes{mirror="${ORDERS_L}"} 8589934592\n` +
    '# HELP peerdb_mirror_slot_lag_sample_timestamp_seconds When the reported slot lag was measured, in Unix seconds (only mirrors that reported it).\n' +
    '# TYPE peerdb_mirror_slot_lag_sample_timestamp_seconds gauge\n' +
    "# HELP peerdb_mirror_slot_wal_status WAL status of the mirror's source replication slot as a state set: 1 for the reported one, 0 for each of the other 3 (only mirrors that reported it).\n" +
    '# TYPE peerdb_mirror_slot_wal_status gauge\n' +
    "# HELP peerdb_mirror_error 1 while the mirror's current state carries an error, labelled with its class; absent otherwise.\n" +
    '# TYPE peerdb_mirror_error gauge\n' +
    `peerdb_mirror_error{mirror="${AWKWARD_L}",class="conn_refused"} 1\n` +
    // No table reported: the per-table families are headers alone.
    '# HELP peerdb_mirror_tables Tables the mirror last reported (only mirrors that reported tables).\n' +
    '# TYPE peerdb_mirror_tables gauge\n' +
    `# HELP ${counter('peerdb_mirror_table_rows_synced_total')} Rows synced into the table, as last reported (only tables that reported it).\n` +
    `# TYPE ${counter('peerdb_mirror_table_rows_synced_total')} counter\n` +
    '# HELP peerdb_mirror_table_last_synced_timestamp_seconds When the table last synced, in Unix seconds, as last reported (only tables that reported it).\n' +
    '# TYPE peerdb_mirror_table_last_synced_timestamp_seconds gauge\n' +
    "# HELP peerdb_mirror_table_snapshot_partitions Partitions of the table's initial load (only tables that reported it).\n" +
    '# TYPE peerdb_mirror_table_snapshot_partitions gauge\n' +
    "# HELP peerdb_mirror_table_snapshot_partitions_synced Partitions of the table's initial load synced so far (only tables that reported it).\n" +
    '# TYPE peerdb_mirror_table_snapshot_partitions_synced gauge\n' +
    "# HELP peerdb_mirror_table_snapshot_rows_synced Rows the table's initial load synced so far (only tables that reported it).\n" +
    '# TYPE peerdb_mirror_table_snapshot_rows_synced gauge\n' +
    "# HELP peerdb_mirror_table_error 1 while the table's last report carries an error, labelled with its class; absent otherwise.\n" +
    '# TYPE peerdb_mirror_table_error gauge\n' +
    (format === 'openmetrics' ? '# EOF\n' : '')
  );
}

describe('pure helpers', () => {
  it.each([
    ['plain', 'plain'],
    ['a"b', 'a\\"b'],
    ['a\\b', 'a\\\\b'],
    ['a\nb', 'a\\nb'],
    ['tab\tand 🚀 é', 'tab\tand 🚀 é'],
    ['\\"\n', '\\\\\\"\\n'],
  ])('escapes label value %j', (raw, escaped) => {
    expect(escapeLabelValue(raw)).toBe(escaped);
  });

  it.each([
    [undefined, 'text'],
    ['', 'text'],
    ['text/plain', 'text'],
    ['*/*', 'text'],
    ['application/openmetrics-text', 'openmetrics'],
    // What Prometheus 2.x sends.
    ['application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', 'openmetrics'],
    ['text/plain;version=0.0.4,application/openmetrics-text;q=0.5', 'text'],
    ['application/openmetrics-text;q=0', 'text'],
  ] as const)('negotiates Accept %j as %s', (accept, format) => {
    expect(negotiateFormat(accept)).toBe(format);
  });

  it.each([
    ['1795255200.000000', '1795255200'],
    ['1795255200.120000', '1795255200.12'],
    ['1795255200.000001', '1795255200.000001'],
    ['1795255200', '1795255200'],
  ])('epoch %s → %s', (raw, out) => {
    expect(epoch(raw)).toBe(out);
  });

  it.each([
    [undefined, 9_500],
    ['15', 14_500],
    ['0.3', 100],
    ['junk', 9_500],
  ])('read budget for timeout header %j is %d ms', (header, ms) => {
    expect(readBudgetMs(header)).toBe(ms);
  });
});

describe('GET /metrics', () => {
  it('renders every live mirror exactly in Prometheus text 0.0.4', async () => {
    const res = await scrape(url);
    expect(res.status).toBe(200);
    expect(res.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(mirrorPart(res.text)).toBe(expectedMirrorPart('text'));
    expect(res.text).not.toContain('dropped_one');
    expect(sample(res.text, 'mirrorstate_catalog_up')).toBe('1');
  });

  it('renders the same series in OpenMetrics 1.0 when asked, counters named without _total, ending in # EOF', async () => {
    const res = await scrape(url, { accept: 'application/openmetrics-text; version=1.0.0' });
    expect(res.contentType).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(mirrorPart(res.text)).toBe(expectedMirrorPart('openmetrics'));
    // The daemon's own counters follow the same rule.
    expect(res.text).toContain('# TYPE mirrorstate_updates counter\nmirrorstate_updates_total{result="applied"} 0\n');
    expect(res.text.match(/# EOF/g)).toHaveLength(1);
  });

  it('prints each per-mirror family with exactly the labels its declaration names, in that order', async () => {
    const res = await scrape(url);
    // The tables' and the slot sample's families have their own catalog (test/metrics/tables.test.ts).
    for (const family of MIRROR_FAMILIES.filter((f) => !/^peerdb_mirror_(tables$|table_|slot_lag_sample|slot_wal)/.test(f.name))) {
      const lines = res.text.split('\n').filter((line) => line.startsWith(`${family.name}{`));
      expect(lines.length, family.name).toBeGreaterThan(0);
      for (const line of lines) {
        const names = [...line.slice(family.name.length).matchAll(/[{,]([a-z_]+)="(?:[^"\\]|\\.)*"/g)].map((m) => m[1]);
        expect(names, line).toEqual(family.labels);
      }
    }
  });

  it('says that the answer varies with Accept (format) and Accept-Encoding (gzip), for caches between', async () => {
    for (const headers of [{}, { accept: 'application/openmetrics-text', 'accept-encoding': 'gzip' }] as Record<string, string>[]) {
      const res = await fetch(`${url}/metrics`, { headers });
      await res.arrayBuffer();
      expect(res.headers.get('vary')).toBe('Accept, Accept-Encoding');
    }
  });

  it('keeps text-format counter names intact after an OpenMetrics scrape', async () => {
    await scrape(url, { accept: 'application/openmetrics-text' });
    const res = await scrape(url);
    expect(res.text).toContain('# TYPE mirrorstate_updates_total counter\n');
    expect(res.text).toContain('# TYPE process_cpu_seconds_total counter\n');
  });

  it('passes promtool check metrics on every mirrorstate_ and peerdb_ family', async () => {
    const res = await scrape(url);
    const problems = promtoolCheckMetrics(res.text);
    const ours = problems.filter((p) => /^(mirrorstate_|peerdb_)/.test(p) || !/^[a-z_]+ /.test(p));
    expect(ours).toEqual([]);
  });

  it('renders again only mirrors whose row changed, and forgets dropped ones', async () => {
    await scrape(url);
    expect(snapshots.lastRendered).toBe(0);
    await putMirror(db.pool, SCHEMA, {
      mirror: EMOJI, status: 'running', statusSince: '2026-11-21T12:00:00Z', observedAt: '2026-11-21T12:00:00Z',
      flowType: 'qrep', rowsSynced: 10, lagSeconds: 0.5, transitionsTotal: 2,
    });
    await putMirror(db.pool, SCHEMA, {
      mirror: ORDERS, status: 'running', statusSince: '2026-11-21T10:00:00.123456Z', observedAt: '2026-11-21T12:00:00Z',
      dropped: true,
    });
    const res = await scrape(url);
    expect(snapshots.lastRendered).toBe(1);
    expect(sample(res.text, `peerdb_mirror_status{mirror="${EMOJI_L}",status="running"}`)).toBe('1');
    expect(sample(res.text, `peerdb_mirror_status{mirror="${EMOJI_L}",status="paused"}`)).toBe('0');
    expect(sample(res.text, `peerdb_mirror_lag_seconds{mirror="${EMOJI_L}"}`)).toBe('0.5');
    expect(res.text).not.toContain(`mirror="${ORDERS_L}"`);
    expect(sample(res.text, `peerdb_mirror_error{mirror="${AWKWARD_L}",class="conn_refused"}`)).toBe('1');
  });

  it('answers within the Prometheus scrape timeout with the last snapshot and catalog_up 0 when the read is stuck', async () => {
    const before = await scrape(url);
    const takenAt = sample(before.text, 'mirrorstate_snapshot_timestamp_seconds');
    // An exclusive lock on the mirrors table holds every read back until we let go.
    const locker = await db.pool.connect();
    try {
      await locker.query('begin');
      await locker.query(`lock table "${SCHEMA}".mirrors in access exclusive mode`);
      const started = Date.now();
      const stuck = await scrape(url, { 'x-prometheus-scrape-timeout-seconds': '0.6' });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(sample(stuck.text, 'mirrorstate_catalog_up')).toBe('0');
      expect(sample(stuck.text, 'mirrorstate_snapshot_timestamp_seconds')).toBe(takenAt);
      expect(mirrorPart(stuck.text)).toBe(mirrorPart(before.text));
    } finally {
      await locker.query('rollback');
      locker.release();
    }
    const after = await scrape(url);
    expect(sample(after.text, 'mirrorstate_catalog_up')).toBe('1');
    expect(Number(sample(after.text, 'mirrorstate_snapshot_timestamp_seconds'))).toBeGreaterThan(Number(takenAt));
  });

  it('shares one catalog read between concurrent scrapes', async () => {
    const locker = await db.pool.connect();
    let results: Awaited<ReturnType<typeof scrape>>[];
    try {
      await locker.query('begin');
      await locker.query(`lock table "${SCHEMA}".mirrors in access exclusive mode`);
      const pending = Array.from({ length: 5 }, () => scrape(url));
      // All five wait on the same read: the snapshot pool (2 connections) would otherwise make
      // three of them queue for a connection and read later, with other timestamps. Wait for the
      // read to reach the lock (however slow the machine), then give the other scrapes, sent at the
      // same time, a moment to start reads of their own if they were going to: still one.
      const waiting = async () =>
        (await db.pool.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'mirrorstate-metrics' and wait_event_type = 'Lock'`,
        )).rows[0]?.n ?? 0;
      await waitFor('a catalog read waiting on the lock', async () => (await waiting()) >= 1, 30_000, 20);
      await new Promise((r) => setTimeout(r, 300));
      expect(await waiting()).toBe(1);
      await locker.query('rollback');
      results = await Promise.all(pending);
    } finally {
      locker.release();
    }
    const stamps = new Set(results.map((r) => sample(r.text, 'mirrorstate_snapshot_timestamp_seconds')));
    expect(stamps.size).toBe(1);
    expect(results.every((r) => sample(r.text, 'mirrorstate_catalog_up') === '1')).toBe(true);
  });
});
