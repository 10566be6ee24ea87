/**
 * `npm run bench scrape`: GET /metrics of the real daemon process at 1,000 and 10,000 mirrors,
 * side by side with prom-client's plain Gauge/Counter rendering of the same series in this process.
 *
 * The catalog is filled directly with SQL (generate_series) in a bench database of its own,
 * dropped at the end. Before each timed scrape 1% of the mirrors change, as a live fleet would.
 * The daemon's longest event-loop block is read from its own `nodejs_eventloop_lag_max_seconds`
 * (prom-client's monitorEventLoopDelay, 10 ms resolution, reset at every scrape), so together the
 * scrapes cover every moment after the first: reads, renders and streaming alike.
 */
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import pg from 'pg';
import { Counter, Gauge, Registry } from 'prom-client';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { readMirrorRows, readMirrorVersions, type MirrorRow } from '../../src/metrics/readMirrorRows.js';
import { NO_SHARDING } from '../../src/metrics/shard.js';
import { STATUSES } from '../../src/update.js';
import { startDaemon } from '../../test/helpers/daemon.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';
import { percentile } from '../lib.js';

const SIZES = [1_000, 10_000];
const SCRAPES = 30;
const BASELINE_RENDERS = 10;
const FILL_CHUNK = 2_000;
const CHURN = 0.01;

const ms = (x: number) => `${x.toFixed(1)} ms`;

/** Mirrors `mirror_000001`… with every status, most optional fields, and some errors. */
async function fill(pool: pg.Pool, from: number, to: number): Promise<void> {
  for (let start = from; start <= to; start += FILL_CHUNK) {
    const end = Math.min(to, start + FILL_CHUNK - 1);
    await pool.query(
      `insert into mirrorstate.mirrors (mirror, status, status_since, observed_at, seq, workflow_id, flow_type, source_peer,
         destination_peer, rows_synced, lag_seconds, error_class, error_message, transitions_total)
       select 'mirror_' || lpad(i::text, 6, '0'), ($3::text[])[1 + i % 12],
         now() - make_interval(secs => i * 7.25), now() - make_interval(secs => i * 0.5), i % 3,
         'wf-' || i, (array['cdc', 'qrep', 'xmin'])[1 + i % 3], 'pg_source_' || (i % 20), 'dest "' || (i % 7) || '"',
         case when i % 10 <> 0 then i::bigint * 1000 end, case when i % 4 <> 0 then (i % 600) / 3.0 end,
         case when i % 20 = 0 then 'connection_refused' end, case when i % 20 = 0 then 'boom' end, 1 + i % 9
       from generate_series($1::int, $2::int) as i`,
      [start, end, [...STATUSES]],
    );
    process.stderr.write(`\r  filling the catalog: ${end.toLocaleString('en')} / ${to.toLocaleString('en')} mirrors`);
  }
  process.stderr.write('\n');
}

async function churn(pool: pg.Pool, mirrors: number): Promise<void> {
  await pool.query(
    `update mirrorstate.mirrors set lag_seconds = random() * 60, rows_synced = coalesce(rows_synced, 0) + 100,
       updated_at = clock_timestamp()
     where mirror in (select 'mirror_' || lpad((1 + floor(random() * $1))::int::text, 6, '0') from generate_series(1, $2))`,
    [mirrors, Math.max(1, Math.round(mirrors * CHURN))],
  );
}

async function allRows(pool: pg.Pool): Promise<MirrorRow[]> {
  const client = await pool.connect();
  try {
    const versions = await readMirrorVersions(client, 'mirrorstate', NO_SHARDING);
    return await readMirrorRows(client, 'mirrorstate', versions.map((v) => v.mirror), NO_SHARDING);
  } finally {
    client.release();
  }
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

interface Measured {
  p50: number;
  p99: number;
  /** p50 of the daemon's own mirrorstate_scrape_duration_seconds: the catalog read's share. */
  readP50?: number;
  cold?: number;
  coldBlock?: number;
  maxBlock: number;
  series: number;
  rssBytes?: number;
}

async function measureDaemon(url: string, pool: pg.Pool, mirrors: number): Promise<Measured> {
  const times: number[] = [];
  const blocks: number[] = [];
  const reads: number[] = [];
  let text = '';
  let cold = 0;
  let coldBlock = 0;
  for (let i = 0; i <= SCRAPES; i++) {
    if (i > 0) await churn(pool, mirrors);
    const started = performance.now();
    const res = await fetch(`${url}/metrics`);
    const body = await res.arrayBuffer();
    const took = performance.now() - started;
    text = new TextDecoder().decode(body);
    if (i === 0) {
      cold = took;
      coldBlock = value(text, 'nodejs_eventloop_lag_max_seconds') * 1000;
    } else {
      times.push(took);
      blocks.push(value(text, 'nodejs_eventloop_lag_max_seconds') * 1000);
      reads.push(value(text, 'mirrorstate_scrape_duration_seconds') * 1000);
    }
  }
  const sorted = times.sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    readP50: percentile(reads.sort((a, b) => a - b), 50),
    cold,
    coldBlock,
    maxBlock: Math.max(...blocks),
    series: text.split('\n').filter((l) => l.startsWith('peerdb_')).length,
    rssBytes: value(text, 'process_resident_memory_bytes'),
  };
}

/** What a plain prom-client exporter does per scrape: set every series from the rows, then render. */
async function measurePromClient(rows: MirrorRow[]): Promise<Measured> {
  const registry = new Registry();
  const status = new Gauge({ name: 'peerdb_mirror_status', help: 'h', labelNames: ['mirror', 'status'], registers: [registry] });
  const info = new Gauge({
    name: 'peerdb_mirror_info', help: 'h', labelNames: ['mirror', 'flow_type', 'source', 'destination', 'workflow_id'], registers: [registry],
  });
  const since = new Gauge({ name: 'peerdb_mirror_status_since_timestamp_seconds', help: 'h', labelNames: ['mirror'], registers: [registry] });
  const last = new Gauge({ name: 'peerdb_mirror_last_update_timestamp_seconds', help: 'h', labelNames: ['mirror'], registers: [registry] });
  const transitions = new Counter({ name: 'peerdb_mirror_status_transitions_total', help: 'h', labelNames: ['mirror'], registers: [registry] });
  const rowsSynced = new Counter({ name: 'peerdb_mirror_rows_synced_total', help: 'h', labelNames: ['mirror'], registers: [registry] });
  const lag = new Gauge({ name: 'peerdb_mirror_lag_seconds', help: 'h', labelNames: ['mirror'], registers: [registry] });
  const error = new Gauge({ name: 'peerdb_mirror_error', help: 'h', labelNames: ['mirror', 'class'], registers: [registry] });
  const loop = monitorEventLoopDelay({ resolution: 10 });
  const times: number[] = [];
  let text = '';
  loop.enable();
  for (let i = 0; i < BASELINE_RENDERS; i++) {
    const started = performance.now();
    registry.resetMetrics();
    for (const r of rows) {
      const mirror = r.mirror;
      for (const s of STATUSES) status.set({ mirror, status: s }, s === r.status ? 1 : 0);
      info.set({ mirror, flow_type: r.flow_type ?? '', source: r.source_peer ?? '', destination: r.destination_peer ?? '', workflow_id: r.workflow_id ?? '' }, 1);
      since.set({ mirror }, Number(r.status_since));
      last.set({ mirror }, Number(r.observed_at));
      transitions.inc({ mirror }, Number(r.transitions_total));
      if (r.rows_synced !== null) rowsSynced.inc({ mirror }, Number(r.rows_synced));
      if (r.lag_seconds !== null) lag.set({ mirror }, r.lag_seconds);
      if (r.error_class !== null) error.set({ mirror, class: r.error_class }, 1);
    }
    text = await registry.metrics();
    times.push(performance.now() - started);
    await yieldToEventLoop();
  }
  loop.disable();
  const sorted = times.sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    maxBlock: loop.max / 1e6,
    series: text.split('\n').filter((l) => l.startsWith('peerdb_')).length,
  };
}

async function run(): Promise<void> {
  const name = `ms_bench_scrape_${process.pid}`;
  await admin(`create database ${name}`);
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const logger = createLogger('silent');
  const results: { mirrors: number; daemon: Measured; baseline: Measured }[] = [];
  try {
    await migrate(pool, 'mirrorstate', logger);
    let filled = 0;
    for (const mirrors of SIZES) {
      await fill(pool, filled + 1, mirrors);
      filled = mirrors;
      await pool.query('analyze mirrorstate.mirrors');
      const daemon = await startDaemon({ databaseUrl: url });
      try {
        process.stderr.write(`  ${mirrors.toLocaleString('en')} mirrors: ${SCRAPES} scrapes of the daemon…\n`);
        const ours = await measureDaemon(daemon.url, pool, mirrors);
        process.stderr.write(`  ${mirrors.toLocaleString('en')} mirrors: ${BASELINE_RENDERS} renders with prom-client Gauges…\n`);
        const baseline = await measurePromClient(await allRows(pool));
        results.push({ mirrors, daemon: ours, baseline });
      } finally {
        await daemon.stop();
      }
    }
  } finally {
    await pool.end();
    await admin(`drop database if exists ${name} with (force)`);
  }

  console.log(
    '| mirrors | series | /metrics p50 | p99 | catalog read p50 | longest loop block | first scrape (cold cache) | its loop block | prom-client Gauge p50 | p99 | its loop block | daemon RSS |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const { mirrors, daemon: d, baseline: b } of results) {
    console.log(
      `| ${mirrors.toLocaleString('en')} | ${d.series.toLocaleString('en')} | ${ms(d.p50)} | ${ms(d.p99)} | ${ms(d.readP50 ?? NaN)} | ${ms(d.maxBlock)} | ` +
        `${ms(d.cold ?? NaN)} | ${ms(d.coldBlock ?? NaN)} | ${ms(b.p50)} | ${ms(b.p99)} | ${ms(b.maxBlock)} | ${((d.rssBytes ?? NaN) / 2 ** 20).toFixed(0)} MiB |`,
    );
  }
  console.log(
    `\n/metrics: HTTP round trip of the real daemon process, catalog read included, ${CHURN * 100}% of mirrors changed before each scrape.` +
      '\nprom-client: set every series from the same rows and registry.metrics() in this process (no catalog read, no HTTP).' +
      '\nLoop blocks: monitorEventLoopDelay max (10 ms resolution); the first scrape\'s also covers the daemon\'s start-up.' +
      `\nMachine: load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${availableParallelism()} CPUs.`,
  );
}

export default { name: 'scrape', run } satisfies BenchSection;
