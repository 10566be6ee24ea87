/**
 * End to end with a real Prometheus: the daemon runs as a process, updates go through the real
 * queue, Prometheus scrapes /metrics every second (negotiating OpenMetrics, as it does by default),
 * and a PromQL query through its HTTP API returns exactly the mirrors put into each status. The
 * dashboard's Tables row runs here too, each query with its variables expanded as Grafana expands
 * them, against mirrors whose tables are known: each panel lists exactly the tables it should.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgBoss } from 'pg-boss';
import { createLogger } from '../../src/log.js';
import { PROMETHEUS } from '../helpers/prometheus.js';
import { publishUpdates, type UpdateInput } from '../../src/publish.js';
import { createBoss } from '../../src/queue/boss.js';
import { TABLE_FAMILY_NAMES } from '../../src/metrics/families.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
let daemon: DaemonProcess;
let boss: PgBoss;
let prometheus: ChildProcess | undefined;
let prometheusOutput = '';
let prometheusUrl: string;
let dir: string;

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(promql: string): Promise<VectorSample[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data: { result: VectorSample[] }; error?: string };
  if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
  return body.data.result;
}

/** Mirrors by the status whose series is 1, each list sorted. */
async function mirrorsByStatus(): Promise<Record<string, string[]>> {
  const byStatus: Record<string, string[]> = {};
  for (const s of await query('peerdb_mirror_status{job="mirrorstate"} == 1')) {
    (byStatus[s.metric.status!] ??= []).push(s.metric.mirror!);
  }
  for (const list of Object.values(byStatus)) list.sort();
  return byStatus;
}

const EXPECTED: Record<string, string[]> = {
  failed: ['billing "eu" \\ 🚀'],
  paused: ['p1', 'p2'],
  running: ['r1', 'r2', 'r3'],
  snapshot: ['s1'],
};

beforeAll(async () => {
  db = await createTestDatabase('metrics_prometheus');
  daemon = await startDaemon({ databaseUrl: db.url });
  boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 2, logger: createLogger('silent'), worker: false });
  await boss.start();

  dir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-prometheus-'));
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: mirrorstate',
      `    static_configs: [{ targets: ["127.0.0.1:${daemon.port}"] }]`,
      '',
    ].join('\n'),
  );
  prometheus = spawn(
    PROMETHEUS,
    [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stdout?.on('data', (c: Buffer) => (prometheusOutput += c.toString()));
  prometheus.stderr?.on('data', (c: Buffer) => (prometheusOutput += c.toString()));
  await waitFor('prometheus ready', async () => (await fetch(`${prometheusUrl}/-/ready`).catch(() => undefined))?.ok === true, 30_000, 200);
});

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    prometheus.kill('SIGTERM');
    await once(prometheus, 'exit');
  }
  await boss?.stop({ graceful: false, timeout: 1000 });
  await daemon?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Prometheus scraping the daemon', () => {
  it('finds exactly the mirrors put into each status, dropped ones excluded', async () => {
    const t = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();
    const updates: UpdateInput[] = [
      ...['r1', 'r2', 'r3'].map((mirror): UpdateInput => ({ mirror, status: 'running', observedAt: t(5000), flowType: 'cdc' })),
      // p1 ran first: its later update moves it to paused.
      { mirror: 'p1', status: 'running', observedAt: t(6000) },
      { mirror: 'p1', status: 'paused', observedAt: t(5000) },
      { mirror: 'p2', status: 'STATUS_PAUSED', observedAt: t(5000) },
      { mirror: 's1', status: 5, observedAt: t(5000) },
      { mirror: 'billing "eu" \\ 🚀', status: 'failed', observedAt: t(5000), error: { message: 'boom', class: 'auth' } },
      { mirror: 'gone', status: 'running', observedAt: t(6000) },
    ];
    await publishUpdates(boss, updates);
    await waitFor('gone on /metrics', async () => (await query('peerdb_mirror_status{mirror="gone"} == 1')).length === 1, 30_000, 250);
    await publishUpdates(boss, [{ mirror: 'gone', status: 'terminated', observedAt: t(1000), dropped: true }]);

    let last: Record<string, string[]> = {};
    try {
      await waitFor('the expected mirrors per status', async () => {
        last = await mirrorsByStatus();
        return JSON.stringify(last) === JSON.stringify(EXPECTED);
      }, 30_000, 250);
    } finally {
      expect(last, prometheusOutput.slice(-2000)).toEqual(EXPECTED);
    }
    // The state set is complete for every mirror; the error and the target's health come through too.
    const perMirror = await query('count by (mirror) (peerdb_mirror_status{job="mirrorstate"})');
    expect(perMirror.map((s) => [s.metric.mirror, s.value[1]]).sort()).toEqual(
      Object.values(EXPECTED).flat().sort().map((m) => [m, '12']),
    );
    expect((await query('peerdb_mirror_error == 1')).map((s) => [s.metric.mirror, s.metric.class])).toEqual([['billing "eu" \\ 🚀', 'auth']]);
    expect((await query('mirrorstate_catalog_up')).map((s) => s.value[1])).toEqual(['1']);
    expect((await query('up{job="mirrorstate"}')).map((s) => s.value[1])).toEqual(['1']);
    // Queue counts are polled every 5 s: a job that is not an update becomes one dead letter, counted
    // as created in the dead-letter queue within a few scrapes (written jobs leave the queue: consumer.ts).
    await boss.insert('mirrorstate-updates', [{ data: { mirror: 'no status' } }]);
    const deadLetters = 'mirrorstate_queue_jobs{queue="mirrorstate-updates-dlq",state="created"}';
    await waitFor('one dead letter counted', async () => (await query(deadLetters)).map((s) => s.value[1]).join() === '1', 30_000, 250);
    expect(await query('count(mirrorstate_queue_jobs)')).toMatchObject([{ value: [expect.any(Number), '12'] }]);
  });
});

interface DashboardPanel {
  type: string;
  title: string;
  targets?: { expr: string; refId: string }[];
}

/** The panels of the dashboard's Tables row: those after its row panel, up to the next row. */
function tablesRow(): DashboardPanel[] {
  const { panels } = JSON.parse(readFileSync(new URL('../../grafana/dashboards/mirrorstate.json', import.meta.url), 'utf8')) as { panels: DashboardPanel[] };
  const start = panels.findIndex((p) => p.type === 'row' && p.title === 'Tables');
  const end = panels.findIndex((p, i) => i > start && p.type === 'row');
  return panels.slice(start + 1, end === -1 ? undefined : end);
}

/**
 * What Grafana's Prometheus data source sends for `expr`: `$job` and `$mirror` are multi-value
 * variables with include-All (All is their allValue `.+`, chosen values are regex-escaped and joined
 * as `(a|b)`), `$__rate_interval` is at least four scrape intervals (here 5m, past the whole test).
 */
function expand(expr: string, mirrors: string[] | 'All' = 'All'): string {
  const escape = (v: string) => v.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');
  const mirror = mirrors === 'All' ? '.+' : mirrors.length === 1 ? escape(mirrors[0]!) : `(${mirrors.map(escape).join('|')})`;
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', '.+').replaceAll('$mirror', mirror);
}

describe("the dashboard's Tables row on Prometheus", () => {
  const row = tablesRow();
  /** The row's panel of that type whose title starts with `title`. */
  const panel = (type: string, title: string) => {
    const found = row.find((p) => p.type === type && p.title.startsWith(title));
    if (!found?.targets) throw new Error(`no ${type} panel ${title} in the Tables row`);
    return found;
  };
  /** Each query's result as `mirror/table` (and class) → value, the rows Grafana's merge joins on. */
  async function run(type: string, title: string, mirrors: string[] | 'All' = 'All'): Promise<Record<string, Record<string, number>>> {
    const out: Record<string, Record<string, number>> = {};
    for (const t of panel(type, title).targets ?? []) {
      out[t.refId] = Object.fromEntries((await query(expand(t.expr, mirrors))).map((s) => [
        [s.metric.mirror, s.metric.table, s.metric.class].filter((v) => v !== undefined).join('/'), Number(s.value[1]),
      ]));
    }
    return out;
  }
  const now = Date.now();
  const at = (msAgo: number) => new Date(now - msAgo).toISOString();
  const HOSTILE = 'public."we\\ird"';

  it('lists the slowest, stalest, loading and failing tables, and nothing when the per-table families are absent', async () => {
    expect(row.map((p) => p.type).sort()).toEqual(['stat', 'stat', 'stat', 'table', 'table', 'table', 'table']);
    const orders = (rows: number): UpdateInput => ({
      mirror: 'orders_cdc', status: 'running', observedAt: at(rows === 1000 ? 2000 : 1000), tables: [
        { table: 'public.orders', rowsSynced: rows, lastSyncedAt: at(10_000) },
        { table: 'public.items', rowsSynced: 500, lastSyncedAt: at(3_600_000) },
        { table: HOSTILE, rowsSynced: 0, lastSyncedAt: at(86_400_000), error: { message: 'gone', class: 'connection' } },
      ],
    });
    await publishUpdates(boss, [
      orders(1000),
      // Stale tables of a paused mirror are not the running mirrors' slowest or stalest.
      { mirror: 'paused_cdc', status: 'paused', observedAt: at(1000), tables: [{ table: 'public.old', rowsSynced: 5, lastSyncedAt: at(864_000_000) }] },
      { mirror: 'loading_cdc', status: 'snapshot', observedAt: at(1000), tables: [
        { table: 'public.a', snapshot: { partitions: 10, partitionsSynced: 3, rowsSynced: 300 } },
        { table: 'public.b', snapshot: { partitions: 10, partitionsSynced: 10, rowsSynced: 1000 } },
        { table: 'public.c', snapshot: { partitions: 4, partitionsSynced: 0, rowsSynced: 0 } },
        { table: 'public.d', snapshot: { partitions: 0, partitionsSynced: 0 } },
      ] },
    ]);
    const orderRows = async () => (await query('peerdb_mirror_table_rows_synced_total{table="public.orders"}')).map((s) => s.value[1]).join();
    await waitFor('the first count of public.orders scraped', async () => (await orderRows()) === '1000', 30_000, 250);
    await publishUpdates(boss, [orders(1600)]);
    await waitFor('the second count of public.orders scraped', async () => (await orderRows()) === '1600', 30_000, 250);
    await waitFor('every table scraped', async () => (await query('peerdb_mirror_tables')).length === 3, 30_000, 250);

    expect(await run('stat', 'Tables')).toEqual({ A: { '': 8 } });
    expect(await run('stat', 'Initial loads in progress')).toEqual({ A: { '': 2 } });
    expect(await run('stat', 'Tables with an error')).toEqual({ A: { '': 1 } });
    expect(await run('table', 'Tables with an error')).toEqual({ A: { [`orders_cdc/${HOSTILE}/connection`]: 1 } });

    // c at 0 of 4 and a at 3 of 10 (the panel sorts by progress); b has finished and d has no partitions.
    expect(await run('table', 'Initial loads in progress')).toEqual({
      A: { 'loading_cdc/public.c': 0, 'loading_cdc/public.a': 0.3 },
      B: { 'loading_cdc/public.c': 0, 'loading_cdc/public.a': 3 },
      C: { 'loading_cdc/public.c': 4, 'loading_cdc/public.a': 10 },
      D: { 'loading_cdc/public.c': 0, 'loading_cdc/public.a': 300 },
    });

    const slowest = await run('table', 'Slowest tables');
    expect(Object.keys(slowest.A!).sort()).toEqual(['orders_cdc/public.items', 'orders_cdc/public.orders', `orders_cdc/${HOSTILE}`].sort());
    expect(slowest.A!['orders_cdc/public.orders']).toBeGreaterThan(0);
    expect(slowest.A!['orders_cdc/public.items']).toBe(0);
    expect(Object.keys(slowest.B!).sort()).toEqual(Object.keys(slowest.A!).sort());
    expect(slowest.B!['orders_cdc/public.items']).toBeGreaterThanOrEqual(3600);
    expect(slowest.B!['orders_cdc/public.items']).toBeLessThan(3600 + 120);

    const stalest = await run('table', 'Stalest tables');
    expect(Object.keys(stalest.A!).sort()).toEqual(Object.keys(slowest.A!).sort());
    expect(stalest.A![`orders_cdc/${HOSTILE}`]).toBeGreaterThanOrEqual(86_400);
    // Last synced is the table's lastSyncedAt, in milliseconds as Grafana's date unit reads it.
    const lastSynced = { 'orders_cdc/public.orders': now - 10_000, 'orders_cdc/public.items': now - 3_600_000, [`orders_cdc/${HOSTILE}`]: now - 86_400_000 };
    expect(Object.keys(stalest.B!).sort()).toEqual(Object.keys(lastSynced).sort());
    for (const [key, ms] of Object.entries(lastSynced)) expect(stalest.B![key], key).toBeCloseTo(ms, 0);
    expect(Object.keys(stalest.C!).sort()).toEqual(Object.keys(stalest.A!).sort());

    // The Mirror variable narrows every panel to the chosen mirrors.
    expect(await run('table', 'Initial loads in progress', ['orders_cdc'])).toEqual({ A: {}, B: {}, C: {}, D: {} });
    expect(Object.keys((await run('table', 'Stalest tables', ['orders_cdc', 'paused_cdc'])).A!)).toHaveLength(3);
    expect(await run('stat', 'Tables', ['loading_cdc'])).toEqual({ A: { '': 4 } });

    // With the per-table families denied (absent from /metrics) every panel of the row is empty,
    // not an error and not a made-up zero.
    const denied = new RegExp(`\\b(${[...TABLE_FAMILY_NAMES, 'peerdb_mirror_tables'].join('|')})\\b`, 'g');
    for (const p of row) {
      for (const t of p.targets ?? []) {
        const absent = expand(t.expr).replace(denied, 'denied_$1');
        expect(absent, p.title).not.toBe(expand(t.expr));
        expect(await query(absent), `${p.title} ${t.refId}`).toEqual([]);
      }
    }
  });
});
