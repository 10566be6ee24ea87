/**
 * End to end with a real Prometheus: the daemon runs as a process, updates go through the real
 * queue, Prometheus scrapes /metrics every second (negotiating OpenMetrics, as it does by default),
 * and a PromQL query through its HTTP API returns exactly the mirrors put into each status.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgBoss } from 'pg-boss';
import { createLogger } from '../../src/log.js';
import { PROMETHEUS } from '../helpers/prometheus.js';
import { publishUpdates, type UpdateInput } from '../../src/publish.js';
import { createBoss } from '../../src/queue/boss.js';
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
