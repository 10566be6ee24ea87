/**
 * `npm run bench scrape`: GET /metrics of the real daemon process at 10,000 and 100,000 mirrors,
 * plain and gzip, side by side with a static-server floor measured in the same run (a bare
 * node:http server in its own process handing out the same bytes), then the 4-shard split of the
 * 100,000 (each shard scraped from its own daemon process).
 *
 * The catalog is filled directly with SQL (generate_series) in a bench database of its own,
 * dropped at the end. Before each timed scrape 1% of the mirrors change, as a live fleet would.
 * The daemon's event-loop block is read from its own `nodejs_eventloop_lag_max_seconds`
 * (prom-client's monitorEventLoopDelay, reset at every collection, which a scrape makes while its
 * catalog read waits on Postgres): each scrape's value covers the previous scrape's rendering,
 * compressing and sending, and the churn; the table shows the median
 * over scrapes (a scheduler stall on this shared machine hits one round, not the median) and the
 * idle loop's in the same run (a HEAD /metrics resets it, 300 ms of nothing, then a GET of an
 * unchanged fleet). BENCH_SCRAPES sets the scrapes per row (default 10). BENCH_BASELINE_CLI names
 * another build's dist/cli.js (e.g. main's) measured beside this one in the same run.
 */
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { STATUSES } from '../../src/update.js';
import { startDaemon } from '../../test/helpers/daemon.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';
import { ms, percentile } from '../lib.js';

const SIZES = [10_000, 100_000];
const SCRAPES = Number(process.env.BENCH_SCRAPES ?? 10);
const SHARDS = 4;
const FILL_CHUNK = 2_000;
const CHURN = 0.01;


/** Mirrors `mirror_000001`… with every status, most optional fields, and some errors. */
export async function fill(pool: pg.Pool, from: number, to: number): Promise<void> {
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

export async function churn(pool: pg.Pool, mirrors: number): Promise<void> {
  await pool.query(
    `update mirrorstate.mirrors set lag_seconds = random() * 60, rows_synced = coalesce(rows_synced, 0) + 100,
       updated_at = clock_timestamp()
     where mirror in (select 'mirror_' || lpad((1 + floor(random() * $1))::int::text, 6, '0') from generate_series(1, $2))`,
    [mirrors, Math.max(1, Math.round(mirrors * CHURN))],
  );
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

interface Got {
  ms: number;
  body: Buffer;
}

/** One GET with the raw bytes (no decoding on our side, so plain and gzip cost what they cost to send). */
function get(url: string, gzip: boolean): Promise<Got> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: gzip ? { 'accept-encoding': 'gzip' } : {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ ms: performance.now() - started, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The floor: a bare node:http server in its own process handing out fixed bytes. */
async function staticFloor(body: Buffer, gzip: boolean, times: number): Promise<number> {
  const file = join(tmpdir(), `ms-bench-static-${process.pid}-${gzip ? 'gz' : 'plain'}`);
  writeFileSync(file, body);
  const proc = spawn(process.execPath, ['-e', `
    const body = require('fs').readFileSync(${JSON.stringify(file)});
    const s = require('http').createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', ${gzip ? "'content-encoding': 'gzip'," : ''} });
      res.end(body);
    });
    s.listen(0, '127.0.0.1', () => console.log(s.address().port));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve) => proc.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))));
    const ms: number[] = [];
    for (let i = 0; i <= times; i++) {
      const got = await get(`http://127.0.0.1:${port}/`, gzip);
      if (i > 0) ms.push(got.ms);
    }
    return percentile(ms.sort((a, b) => a - b), 50);
  } finally {
    proc.kill();
    rmSync(file, { force: true });
  }
}

interface Measured {
  cold: number;
  plain: number;
  gzip: number;
  floorPlain: number;
  floorGzip: number;
  bytes: number;
  gzipBytes: number;
  series: number;
  block: number;
  maxBlock: number;
  idleBlock: number;
  rss: number;
}

function head(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'HEAD', agent: false }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Scrapes `times` plain and `times` gzip, 1% of the fleet changed before each (cold first one apart). */
async function measure(url: string, pool: pg.Pool, mirrors: number, times: number, label: string): Promise<Measured> {
  const cold = await get(`${url}/metrics`, false);
  const plain: number[] = [];
  const gzip: number[] = [];
  const blocks: number[] = [];
  let body: Buffer = cold.body;
  let gzBody: Buffer = Buffer.alloc(0);
  for (let i = 0; i < times; i++) {
    await churn(pool, mirrors);
    const p = await get(`${url}/metrics`, false);
    plain.push(p.ms);
    body = p.body;
    const text = body.toString('utf8');
    blocks.push(value(text, 'nodejs_eventloop_lag_max_seconds') * 1000);
    await churn(pool, mirrors);
    const g = await get(`${url}/metrics`, true);
    gzip.push(g.ms);
    gzBody = g.body;
    process.stderr.write(`\r  ${label}: scrape ${i + 1}/${times} (plain ${p.ms.toFixed(0)} ms, gzip ${g.ms.toFixed(0)} ms)   `);
  }
  process.stderr.write('\n');
  const text = (await get(`${url}/metrics`, false)).body.toString('utf8');
  blocks.push(value(text, 'nodejs_eventloop_lag_max_seconds') * 1000);
  const idle: number[] = [];
  for (let i = 0; i < 5; i++) {
    await head(`${url}/metrics`);
    await new Promise((r) => setTimeout(r, 300));
    idle.push(value((await get(`${url}/metrics`, false)).body.toString('utf8'), 'nodejs_eventloop_lag_max_seconds') * 1000);
  }
  return {
    cold: cold.ms,
    plain: percentile(plain.sort((a, b) => a - b), 50),
    gzip: percentile(gzip.sort((a, b) => a - b), 50),
    floorPlain: await staticFloor(body, false, times),
    floorGzip: await staticFloor(gzBody, true, times),
    bytes: body.length,
    gzipBytes: gzBody.length,
    series: text.split('\n').filter((l) => l.startsWith('peerdb_')).length,
    block: percentile([...blocks].sort((a, b) => a - b), 50),
    maxBlock: Math.max(...blocks),
    idleBlock: percentile(idle.sort((a, b) => a - b), 50),
    rss: value(text, 'process_resident_memory_bytes'),
  };
}

async function run(): Promise<void> {
  const name = `ms_bench_scrape_${process.pid}`;
  await admin(`create database ${name}`);
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const logger = createLogger('silent');
  const results: { mirrors: number; m: Measured }[] = [];
  const baselines: { mirrors: number; m: Measured }[] = [];
  const baselineCli = process.env.BENCH_BASELINE_CLI;
  const shards: { shard: number; p50: number; series: number; rss: number }[] = [];
  try {
    await migrate(pool, 'mirrorstate', logger);
    let filled = 0;
    for (const mirrors of SIZES) {
      await fill(pool, filled + 1, mirrors);
      filled = mirrors;
      await pool.query('analyze mirrorstate.mirrors');
      for (const cli of baselineCli ? [baselineCli, undefined] : [undefined]) {
        const daemon = await startDaemon({ databaseUrl: url, cli });
        try {
          const m = await measure(daemon.url, pool, mirrors, SCRAPES, `${mirrors.toLocaleString('en')} mirrors${cli ? ' (baseline)' : ''}`);
          (cli ? baselines : results).push({ mirrors, m });
        } finally {
          await daemon.stop();
        }
      }
    }
    const mirrors = SIZES[SIZES.length - 1]!;
    for (let i = 0; i < SHARDS; i++) {
      const daemon = await startDaemon({ databaseUrl: url, env: { MIRRORSTATE_METRICS_SHARD: `${i}/${SHARDS}` } });
      try {
        await get(`${daemon.url}/metrics`, false);
        const ms: number[] = [];
        let text = '';
        for (let k = 0; k < SCRAPES; k++) {
          await churn(pool, mirrors);
          const got = await get(`${daemon.url}/metrics`, false);
          ms.push(got.ms);
          text = got.body.toString('utf8');
        }
        shards.push({ shard: i, p50: percentile(ms.sort((a, b) => a - b), 50), series: text.split('\n').filter((l) => l.startsWith('peerdb_')).length, rss: value(text, 'process_resident_memory_bytes') });
        process.stderr.write(`  shard ${i}/${SHARDS} of ${mirrors.toLocaleString('en')}: p50 ${shards[i]!.p50.toFixed(0)} ms\n`);
      } finally {
        await daemon.stop();
      }
    }
  } finally {
    await pool.end();
    await admin(`drop database if exists ${name} with (force)`);
  }

  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log('| daemon | mirrors | series | body | first scrape | plain p50 | static floor p50 | ratio | gzip body | gzip p50 | static gzip floor p50 | gzip vs plain floor | loop block p50 (max) | idle loop | daemon RSS after |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const rows = results.flatMap((r, i) => [...(baselines[i] ? [{ ...baselines[i]!, who: 'baseline' }] : []), { ...r, who: 'this' }]);
  for (const { mirrors, m, who } of rows) {
    console.log(
      `| ${who} | ${mirrors.toLocaleString('en')} | ${m.series.toLocaleString('en')} | ${(m.bytes / 1e6).toFixed(1)} MB | ${ms(m.cold)} | ${ms(m.plain)} | ${ms(m.floorPlain)} | ` +
        `${(m.plain / m.floorPlain).toFixed(2)}× | ${(m.gzipBytes / 1e6).toFixed(2)} MB | ${ms(m.gzip)} | ${ms(m.floorGzip)} | ${(m.gzip / m.floorPlain).toFixed(2)}× | ${ms(m.block)} (${ms(m.maxBlock)}) | ${ms(m.idleBlock)} | ${mib(m.rss)} |`,
    );
  }
  if (results.length > 1) {
    const [a, b] = [results[0]!, results[results.length - 1]!];
    console.log(`\nGrowth ${a.mirrors.toLocaleString('en')} → ${b.mirrors.toLocaleString('en')} mirrors (${b.mirrors / a.mirrors}×): plain p50 ${(b.m.plain / a.m.plain).toFixed(1)}×, RSS ${(b.m.rss / a.m.rss).toFixed(1)}×.`);
  }
  const whole = results[results.length - 1]!.m;
  console.log(`\n| ${SHARDS} shards of ${SIZES[SIZES.length - 1]!.toLocaleString('en')} mirrors | series | plain p50 | vs unsharded | RSS |`);
  console.log('|---|---:|---:|---:|---:|');
  for (const s2 of shards) {
    console.log(`| shard ${s2.shard}/${SHARDS} | ${s2.series.toLocaleString('en')} | ${ms(s2.p50)} | ${(s2.p50 / whole.plain).toFixed(2)}× | ${mib(s2.rss)} |`);
  }
  console.log(
    `\nScrapes: HTTP round trips of the real daemon process from this process (raw bytes, nothing decoded), catalog read included, ${CHURN * 100}% of mirrors changed before each.` +
      '\nStatic floor: a bare node:http server in its own process handing out the same bytes (plain, or the same gzip bytes), same client.' +
      '\nLoop block: the daemon\'s nodejs_eventloop_lag_max_seconds per scrape after the first, median (max); idle: the same over 300 ms without work. RSS: process_resident_memory_bytes after the scrapes.' +
      `\nTargets (issue 10): 10,000 plain ≤ 1.2× floor, block ≤ 20 ms, RSS ≤ 150 MB; 100,000 ≤ 10× of 10,000 in time and RSS, first scrape ≤ 10 s; each of 4 shards ≤ 0.3× unsharded.` +
      `\nMachine: load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${availableParallelism()} CPUs.`,
  );
}
export default { name: 'scrape', run } satisfies BenchSection;
