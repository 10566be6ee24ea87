/**
 * `npm run bench page`: the status page at 10,000 mirrors (and the front page at 100,000), side by
 * side with the JSON read API over the same catalog in the same run, and with the bare catalog
 * read behind the front page (no HTTP, no HTML).
 *
 * The routes run in this process on a real HttpServer (the daemon's own route code and a pool
 * like its own); the requests come from a worker thread, so the client's parsing is not charged to
 * the server's event loop. `monitorEventLoopDelay` (1 ms resolution) watches this thread while each
 * route is measured: its maximum is the longest the server's event loop was blocked, by reads,
 * row parsing, rendering and sending alike (and by garbage collection, which is part of the cost).
 * On a shared machine the scheduler stalls threads too; see `watched` for how that noise is kept
 * apart, and the "noise floor" rows for what the machine alone contributes.
 *
 * The catalog is filled with SQL (generate_series) in a bench database of its own, dropped at the
 * end: mirrors in all kinds of status, 1% failed with an error, 2% dropped; 20 journal rows and 5
 * transitions each at 10,000 mirrors (4 hours apart, all in the last day, so each fleet-page
 * sparkline has five periods to draw); the 90,000 more for the 100,000 run have no history. One
 * more mirror, `history_50k`, has 50,000 transitions in the last 7 days: its page draws the default
 * timeline window over all of them.
 *
 * BENCH_BASELINE_DIST names another build's dist/ (e.g. a worktree of an older commit, built with
 * `npx tsc -p tsconfig.build.json`): its status page is served beside this one, on the same catalog
 * and in the same run, and the fleet pages and the 50,000-transition mirror's page are measured on
 * both, a round of each in turn (sideBySide); the fleet pages also on this build with no sparkline
 * read kept between views (what a page costs when every row's history is new to it).
 */
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';
import { ms, percentile } from '../lib.js';

// This build's page as the daemon runs it: compiled, from dist/ (`npm run bench` builds it first),
// like the baseline's. Through tsx every function it creates pays a naming helper the compiled
// baseline never pays, which is not the page's cost.
const built = (file: string) => pathToFileURL(path.resolve('dist', file)).href;
const { readMirrorPage } = (await import(built('catalog/readMirrorPage.js'))) as typeof import('../../src/catalog/readMirrorPage.js');
const { registerApiRoutes } = (await import(built('http/api.js'))) as typeof import('../../src/http/api.js');
const { registerStatusPage } = (await import(built('http/page/routes.js'))) as typeof import('../../src/http/page/routes.js');
const { HttpServer } = (await import(built('http/server.js'))) as typeof import('../../src/http/server.js');

const SCHEMA = 'mirrorstate';
const FILL_CHUNK = 5_000;
const JOURNAL_PER_MIRROR = 20;
const TRANSITIONS_PER_MIRROR = 5;
const REQUESTS = 200;
const HEAVY_REQUESTS = 40;
const WARMUP = 20;

const name = (i: number) => `mirror_${String(i).padStart(6, '0')}`;

async function fillMirrors(pool: pg.Pool, from: number, to: number, history: boolean): Promise<void> {
  for (let start = from; start <= to; start += FILL_CHUNK) {
    const end = Math.min(to, start + FILL_CHUNK - 1);
    await pool.query(
      `insert into ${SCHEMA}.mirrors (mirror, status, status_since, observed_at, seq, workflow_id, flow_type, source_peer,
         destination_peer, rows_synced, lag_seconds, slot_lag_bytes, error_class, error_message, dropped_at,
         transitions_total, journal_length, journal_oldest_at)
       select 'mirror_' || lpad(i::text, 6, '0'),
         case when i % 100 = 0 then 'failed' when i % 10 = 1 then 'paused' when i % 10 = 2 then 'snapshot' else 'running' end,
         now() - make_interval(secs => i), now() - interval '1 second', 0, 'wf-' || i, 'cdc', 'pg_' || (i % 20),
         'snowflake_' || (i % 7), i::bigint * 1000, (i % 600) / 7.0, i::bigint * 4096,
         case when i % 100 = 0 then 'slot_invalidated' end,
         case when i % 100 = 0 then repeat('replication slot "peerflow_slot" was invalidated; ', 10) end,
         case when i % 50 = 7 then now() end,
         $3::int, $4::int, case when $4::int > 0 then timestamptz '2026-01-01' + make_interval(secs => 1) end
       from generate_series($1::int, $2::int) as i`,
      [start, end, history ? TRANSITIONS_PER_MIRROR : 0, history ? JOURNAL_PER_MIRROR : 0],
    );
    if (history) {
      await pool.query(
        `insert into ${SCHEMA}.journal (mirror, observed_at, seq, status, applied, payload)
         select 'mirror_' || lpad(i::text, 6, '0'), timestamptz '2026-01-01' + make_interval(secs => j), 0, 'running', true,
                jsonb_build_object('mirror', 'mirror_' || lpad(i::text, 6, '0'), 'status', 'running', 'rowsSynced', j * 100)
           from generate_series($1::int, $2::int) as i cross join generate_series(1, $3::int) as j`,
        [start, end, JOURNAL_PER_MIRROR],
      );
      await pool.query(
        `insert into ${SCHEMA}.transitions (mirror, from_status, to_status, at, seq)
         select 'mirror_' || lpad(i::text, 6, '0'), case when k > 1 then 'paused' end, 'running',
                now() - make_interval(hours => 4 * ($3::int - k + 1)) + make_interval(secs => i % 3600), 0
           from generate_series($1::int, $2::int) as i cross join generate_series(1, $3::int) as k`,
        [start, end, TRANSITIONS_PER_MIRROR],
      );
    }
    process.stderr.write(`\r  filling the catalog: ${end.toLocaleString('en')} / ${to.toLocaleString('en')} mirrors`);
  }
  process.stderr.write('\n');
  await pool.query(`vacuum analyze ${SCHEMA}.mirrors, ${SCHEMA}.journal, ${SCHEMA}.transitions`);
}

/** The client: GETs the paths in order from a thread of its own, and answers each request's time. */
const CLIENT = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const times = [];
  for (const path of workerData.paths) {
    const started = performance.now();
    const res = await fetch(workerData.base + path);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(path + ' answered ' + res.status);
    times.push(performance.now() - started);
  }
  parentPort.postMessage(times);
})().catch((err) => { throw err; });
`;

/**
 * `blockMs` is the median over ROUNDS equal rounds of each round's longest event-loop delay: a block
 * the code causes recurs in every round, while the scheduler of a shared machine (other processes
 * on the same cores) stalls a thread now and then, which a single maximum would report as a block.
 * `maxMs` is the plain maximum over all rounds, noise included.
 */
interface Result { p50: number; p99: number; blockMs: number; maxMs: number }

const ROUNDS = 5;

interface Round { times: number[]; maxMs: number }

async function watchRound(round: () => Promise<number[]>): Promise<Round> {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const times = await round();
  loop.disable();
  return { times, maxMs: loop.max / 1e6 };
}

async function watched(rounds: (() => Promise<number[]>)[]): Promise<Result> {
  const done: Round[] = [];
  for (const round of rounds) done.push(await watchRound(round));
  return summary(done);
}

function summary(rounds: Round[]): Result {
  const times = rounds.flatMap((r) => r.times);
  const maxima = rounds.map((r) => r.maxMs);
  times.sort((a, b) => a - b);
  maxima.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), blockMs: percentile(maxima, 50), maxMs: maxima[maxima.length - 1] ?? NaN };
}

function inRounds<T>(items: T[]): T[][] {
  const size = Math.ceil(items.length / ROUNDS);
  return Array.from({ length: ROUNDS }, (_, i) => items.slice(i * size, (i + 1) * size));
}

const client = (base: string, list: string[]) => new Promise<number[]>((resolve, reject) => {
  const worker = new Worker(CLIENT, { eval: true, workerData: { base, paths: list } });
  worker.once('message', resolve);
  worker.once('error', reject);
});

async function overHttp(base: string, paths: string[]): Promise<Result> {
  await client(base, paths.slice(0, WARMUP));
  return watched(inRounds(paths).map((list) => () => client(base, list)));
}

/**
 * The same paths from each server (this build, the baseline build, …), a round of each in turn: the
 * load of a shared machine drifts over minutes, and measuring one build after the other would
 * credit the drift to the code.
 */
async function sideBySide(urls: string[], paths: string[]): Promise<Result[]> {
  for (const url of urls) await client(url, paths.slice(0, WARMUP));
  const rounds: Round[][] = urls.map(() => []);
  for (const list of inRounds(paths)) {
    for (const [i, url] of urls.entries()) rounds[i]?.push(await watchRound(() => client(url, list)));
  }
  return rounds.map(summary);
}

async function inProcess(count: number, read: () => Promise<unknown>): Promise<Result> {
  for (let i = 0; i < WARMUP; i++) await read();
  return watched(inRounds(Array.from({ length: count })).map((list) => async () => {
    const times: number[] = [];
    for (const _ of list) {
      const started = performance.now();
      await read();
      times.push(performance.now() - started);
    }
    return times;
  }));
}

/** The machine's own noise: the same watch over an idle event loop (other processes share the cores). */
async function idle(durationMs: number): Promise<Result> {
  const wait = () => new Promise<number[]>((resolve) => setTimeout(() => resolve([]), durationMs / ROUNDS));
  return watched(Array.from({ length: ROUNDS }, () => wait));
}

const randomNames = (mirrors: number, n: number) => Array.from({ length: n }, () => name(1 + Math.floor(Math.random() * mirrors)));

/** A mirror with 50,000 transitions in the last 7 days (the page's default timeline window). */
const LONG_HISTORY = 'history_50k';
const LONG_TRANSITIONS = 50_000;

async function fillLongHistory(pool: pg.Pool): Promise<void> {
  await pool.query(
    `insert into ${SCHEMA}.mirrors (mirror, status, status_since, observed_at, seq, transitions_total)
     values ($1, 'running', now() - interval '1 minute', now() - interval '1 minute', 0, $2::int)`, [LONG_HISTORY, LONG_TRANSITIONS]);
  await pool.query(
    `insert into ${SCHEMA}.transitions (mirror, from_status, to_status, at, seq)
     select $1, null, case when k % 2 = 0 then 'running' else 'failed' end,
            now() - interval '7 days' * (k::float8 / ($2::int + 1)), 0
       from generate_series(1, $2::int) as k`, [LONG_HISTORY, LONG_TRANSITIONS]);
  await pool.query(`vacuum analyze ${SCHEMA}.mirrors, ${SCHEMA}.transitions`);
}

/** One answer of `path`: its size and the size of its timeline SVG. */
async function sizes(base: string, route: string): Promise<{ page: number; svg: number; segments: number }> {
  const text = await (await fetch(base + route)).text();
  const svg = /<svg class="timeline"[\s\S]*?<\/svg>/.exec(text)?.[0] ?? '';
  return { page: Buffer.byteLength(text), svg: Buffer.byteLength(svg), segments: (svg.match(/<rect class="seg/g) ?? []).length };
}

async function measure(base: string, pool: pg.Pool, mirrors: number, detail: boolean, baseline?: string, uncached?: string): Promise<string[]> {
  const rows: string[] = [];
  const add = (what: string, requests: number, r: Result) =>
    rows.push(`| ${what} | ${mirrors.toLocaleString('en')} | ${requests || '–'} | ${requests ? ms(r.p50) : '–'} | ${requests ? ms(r.p99) : '–'} | ${ms(r.blockMs)} | ${ms(r.maxMs)} |`);
  const repeat = (path: string, n = REQUESTS) => Array.from({ length: n }, () => path);
  const started = performance.now();
  // With a baseline: this build, this build reading every sparkline (none kept between views), the baseline.
  const compared = async (what: string, paths: string[], sparklines = true) => {
    const requests = paths.length;
    if (!baseline) return add(what, requests, await overHttp(base, paths));
    const urls = sparklines && uncached ? [base, uncached, baseline] : [base, baseline];
    const results = await sideBySide(urls, paths);
    const short = what.replace(/ \(.*\)$/, '');
    add(what, requests, results[0] as Result);
    if (urls.length === 3) add(`${short}, every sparkline read (none kept)`, requests, results[1] as Result);
    add(`baseline build: ${short}`, requests, results[urls.length - 1] as Result);
  };
  await compared('`GET /` (first page, 100 rows)', repeat('/'));
  add('noise floor: the event loop idle as long', 0, await idle(performance.now() - started));
  await compared('`GET /?after=…` (a random page, 100 rows)', randomNames(mirrors, REQUESTS).map((n) => `/?after=${n}`));
  add('`GET /?status=failed` (1% of the fleet)', REQUESTS, await overHttp(base, repeat('/?status=failed')));
  await compared('`GET /?limit=500` (the largest page)', repeat('/?limit=500'));
  if (baseline) {
    const [ours, theirs] = await Promise.all([base, baseline].map(async (url) => Buffer.byteLength(await (await fetch(`${url}/?limit=500`)).text())));
    rows.push(`| \`/?limit=500\`: ${formatKiB(ours ?? 0)} (baseline ${formatKiB(theirs ?? 0)}), ${Math.round(((ours ?? 0) - (theirs ?? 0)) / 500)} B a row more | | | | | | |`);
  }
  add('baseline: bare readMirrorPage (100 rows, no HTTP, no HTML)', REQUESTS,
    await inProcess(REQUESTS, () => readMirrorPage(pool, SCHEMA, { limit: 100 })));
  add('baseline: the counts statement alone', REQUESTS, await inProcess(REQUESTS, () =>
    pool.query(`select status, dropped_at is not null as dropped, count(*)::int from ${SCHEMA}.mirrors group by 1, 2`)));
  add('baseline: `GET /api/v1/mirrors` (JSON, every mirror)', HEAVY_REQUESTS, await overHttp(base, repeat('/api/v1/mirrors', HEAVY_REQUESTS)));
  if (detail) {
    add('`GET /mirrors/{mirror}` (20 events, 5 transitions)', REQUESTS,
      await overHttp(base, randomNames(mirrors, REQUESTS).map((n) => `/mirrors/${n}`)));
    add('baseline: `GET /api/v1/mirrors/{mirror}` (JSON, the same read)', REQUESTS,
      await overHttp(base, randomNames(mirrors, REQUESTS).map((n) => `/api/v1/mirrors/${n}`)));
    const long = `/mirrors/${LONG_HISTORY}`;
    await compared(`\`GET /mirrors/${LONG_HISTORY}\` (${LONG_TRANSITIONS.toLocaleString('en')} transitions in the 7-day timeline)`, repeat(long, HEAVY_REQUESTS), false);
    const now = await sizes(base, long);
    const before = baseline ? await sizes(baseline, long) : undefined;
    rows.push(`| ${LONG_HISTORY}: page ${formatKiB(now.page)}${before ? ` (baseline ${formatKiB(before.page)})` : ''}, timeline SVG ${formatKiB(now.svg)} with ${now.segments} segments | | | | | | |`);
  }
  return rows;
}

const formatKiB = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/** The status page of another build (BENCH_BASELINE_DIST) on its own server, over the same pool. */
async function startBaseline(pool: pg.Pool, logger: ReturnType<typeof createLogger>): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  const dist = process.env.BENCH_BASELINE_DIST;
  if (!dist) return undefined;
  const at = (file: string) => pathToFileURL(path.join(path.resolve(dist), file)).href;
  const { HttpServer: BaselineServer } = await import(at('http/server.js')) as typeof import('../../src/http/server.js');
  const { registerStatusPage: registerBaseline } = await import(at('http/page/routes.js')) as typeof import('../../src/http/page/routes.js');
  const server = new BaselineServer(logger);
  registerBaseline(server, { pool, schema: SCHEMA, logger });
  const { port } = await server.start(0, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, stop: () => server.stop() };
}

async function run(): Promise<void> {
  const database = `ms_bench_page_${process.pid}`;
  await admin(`create database ${database}`);
  // The daemon's catalog pool has 10 connections; one request at a time needs far fewer.
  const pool = new pg.Pool({ connectionString: databaseUrl(database), max: 4 });
  const logger = createLogger('silent');
  const server = new HttpServer(logger);
  try {
    await migrate(pool, SCHEMA, logger);
    registerStatusPage(server, { pool, schema: SCHEMA, logger });
    registerApiRoutes(server, { pool, schema: SCHEMA, logger });
    const { port } = await server.start(0, '127.0.0.1');
    const base = `http://127.0.0.1:${port}`;
    const baseline = await startBaseline(pool, logger);
    // Beside the baseline, this build once more with no sparkline read kept between views: the cost of a cold page.
    const uncachedServer = baseline ? new HttpServer(logger) : undefined;
    if (uncachedServer) registerStatusPage(uncachedServer, { pool, schema: SCHEMA, logger, sparklineCacheMirrors: 0 });
    const uncached = uncachedServer ? `http://127.0.0.1:${(await uncachedServer.start(0, '127.0.0.1')).port}` : undefined;
    await fillMirrors(pool, 1, 10_000, true);
    await fillLongHistory(pool);
    const rows = await measure(base, pool, 10_000, true, baseline?.url, uncached);
    await baseline?.stop();
    await uncachedServer?.stop();
    await fillMirrors(pool, 10_001, 100_000, false);
    rows.push(...await measure(base, pool, 100_000, false));
    console.log('\n| request | mirrors | requests | p50 | p99 | longest event-loop block (median of 5 rounds) | (max, noise included) |\n|---|---|---|---|---|---|---|');
    console.log(rows.join('\n'));
    console.log(`\nTargets: a page of 10,000 mirrors within 300 ms, no event-loop block over 20 ms. Load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${availableParallelism()} cores.`);
  } finally {
    await server.stop();
    await pool.end();
    await admin(`drop database if exists ${database} with (force)`);
  }
}

const section: BenchSection = { name: 'page', run };
export default section;
