/**
 * `npm run bench scrape`: GET /metrics of the real daemon process at 10,000 and 100,000 mirrors,
 * plain and gzip, side by side with a static-server floor (a bare node:http server in its own
 * process handing out the same bytes), then the 4-shard split of the 100,000 (each shard scraped
 * from its own daemon process).
 *
 * Side by side means in the same rounds: each round changes 1% of the mirrors, as a live fleet
 * would, then scrapes every daemon (this build, and the baseline's when BENCH_BASELINE_CLI names
 * another build's CLI entry, dist/cli/index.js or an older build's dist/cli.js) and the floor back to back, in an order that alternates from round
 * to round. A ratio is the median of the rounds' ratios, so a drift of this shared machine's load
 * between phases does not enter it (a floor measured in a phase of its own moved a build's ratio by a
 * third from one run to the next: docs/performance.md, Figures behind the design). The shards likewise: each round scrapes
 * the unsharded daemon and the four shard daemons after the same change.
 *
 * The catalog is filled directly with SQL (generate_series) in a bench database of its own,
 * dropped at the end. The daemon's event-loop block is read from its own
 * `nodejs_eventloop_lag_max_seconds` (prom-client's monitorEventLoopDelay, reset at every
 * collection, which a scrape makes while its catalog read waits on Postgres): each scrape's value
 * covers the previous scrape's rendering, compressing and sending, and the churn; the table shows
 * the median over scrapes (a scheduler stall on this shared machine hits one round, not the
 * median) and the idle loop's in the same run (a HEAD /metrics resets it, 300 ms of nothing, then
 * a GET of an unchanged fleet). BENCH_SCRAPES sets the rounds (default 15).
 *
 * A scrape no longer reads the catalog when nothing changed since the daemon's last read (it reads
 * when the catalog notifies a change, see src/metrics/snapshot.ts), so speed alone would flatter
 * it: each row also says what the scrapes served. "Held the round's change": the share of plain
 * scrapes whose text held a series the round's change had just written; "data age": how far the
 * data lagged the scrape (its start against `mirrorstate_snapshot_timestamp_seconds`); "change
 * visible after": with the catalog quiet for a while, how long from a change's commit until a
 * scrape shows it.
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
import { type DaemonProcess, startDaemon } from '../../test/helpers/daemon.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';
import { ms, percentile } from '../lib.js';

const SIZES = [10_000, 100_000];
const SCRAPES = Number(process.env.BENCH_SCRAPES ?? 15);
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

/** Changes 1% of the mirrors; returns one changed series as a scrape shows it, to tell whether a scrape holds the change. */
export async function churn(pool: pg.Pool, mirrors: number): Promise<string> {
  const { rows } = await pool.query<{ mirror: string; rows_synced: string }>(
    `update mirrorstate.mirrors set lag_seconds = random() * 60, rows_synced = coalesce(rows_synced, 0) + 100,
       updated_at = clock_timestamp()
     where mirror in (select 'mirror_' || lpad((1 + floor(random() * $1))::int::text, 6, '0') from generate_series(1, $2))
     returning mirror, rows_synced::text`,
    [mirrors, Math.max(1, Math.round(mirrors * CHURN))],
  );
  return `\npeerdb_mirror_rows_synced_total{mirror="${rows[0]!.mirror}"} ${rows[0]!.rows_synced}\n`;
}

export function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

interface Got {
  ms: number;
  body: Buffer;
}

/** One GET with the raw bytes (no decoding on our side, so plain and gzip cost what they cost to send); `accept`: an Accept header. */
export function get(url: string, gzip: boolean, accept?: string): Promise<Got> {
  const started = performance.now();
  const headers: Record<string, string> = { ...(gzip ? { 'accept-encoding': 'gzip' } : {}), ...(accept === undefined ? {} : { accept }) };
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
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
async function startFloor(body: Buffer, gzip: boolean, contentType = 'text/plain; version=0.0.4'): Promise<{ url: string; stop(): void }> {
  const file = join(tmpdir(), `ms-bench-static-${process.pid}-${gzip ? 'gz' : 'plain'}`);
  writeFileSync(file, body);
  const proc = spawn(process.execPath, ['-e', `
    const body = require('fs').readFileSync(${JSON.stringify(file)});
    const s = require('http').createServer((req, res) => {
      res.writeHead(200, { 'content-type': ${JSON.stringify(contentType)}, ${gzip ? "'content-encoding': 'gzip'," : ''} });
      res.end(body);
    });
    s.listen(0, '127.0.0.1', () => console.log(s.address().port));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => proc.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))));
  return {
    url: `http://127.0.0.1:${port}/`,
    stop() {
      proc.kill();
      rmSync(file, { force: true });
    },
  };
}

export const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);

/** Each element of `items`, starting at `round` mod its length: who goes first alternates by round. */
export function rotate<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export interface Measured {
  cold: number;
  plain: number;
  gzip: number;
  floorPlain: number;
  floorGzip: number;
  /** Medians of the rounds' ratios: plain / plain floor, gzip / plain floor. */
  ratio: number;
  gzipRatio: number;
  /** Median of the rounds' ratios: gzip / gzip floor (the same compressed bytes from a static server). */
  gzipFloorRatio: number;
  /** Every round's time, plain and gzip, in round order (for ratios between daemons of the same rounds). */
  plainTimes: number[];
  gzipTimes: number[];
  bytes: number;
  gzipBytes: number;
  series: number;
  block: number;
  maxBlock: number;
  idleBlock: number;
  rss: number;
  /** Share of plain scrapes that held the change made just before them. */
  fresh: number;
  /** How far behind the scrape its per-mirror data was (scrape start − snapshot timestamp): median, max. */
  age: number;
  maxAge: number;
  /** From a change's commit (the catalog quiet for over a second before) until a scrape shows it: median, max. */
  visible: number;
  maxVisible: number;
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

interface Target {
  label: string;
  url: string;
  cold: Got;
  plain: number[];
  gzip: number[];
  blocks: number[];
  body: Buffer;
  gzBody: Buffer;
  fresh: boolean[];
  ages: number[];
  visible: number[];
  /** The floor's times, each scraped right beside this daemon's scrape of the same round. */
  floorPlain: number[];
  floorGzip: number[];
}

/** Changes made while the catalog had been quiet for QUIET_MS, and timed until each daemon shows them. */
const VISIBILITY_TRIALS = 5;
const QUIET_MS = 1_200;

/** The event-loop block, idle, RSS and series of one daemon once its rounds are done. */
async function settle(t: Target): Promise<Measured> {
  const { floorPlain, floorGzip } = t;
  const text = (await get(`${t.url}/metrics`, false)).body.toString('utf8');
  t.blocks.push(value(text, 'nodejs_eventloop_lag_max_seconds') * 1000);
  const idle: number[] = [];
  const sorted = [...t.ages].sort((a, b) => a - b);
  for (let i = 0; i < 5; i++) {
    await head(`${t.url}/metrics`);
    await new Promise((r) => setTimeout(r, 300));
    idle.push(value((await get(`${t.url}/metrics`, false)).body.toString('utf8'), 'nodejs_eventloop_lag_max_seconds') * 1000);
  }
  return {
    cold: t.cold.ms,
    plain: median(t.plain),
    gzip: median(t.gzip),
    floorPlain: median(floorPlain),
    floorGzip: median(floorGzip),
    ratio: median(t.plain.map((x, i) => x / floorPlain[i]!)),
    gzipRatio: median(t.gzip.map((x, i) => x / floorPlain[i]!)),
    gzipFloorRatio: median(t.gzip.map((x, i) => x / floorGzip[i]!)),
    plainTimes: t.plain,
    gzipTimes: t.gzip,
    bytes: t.body.length,
    gzipBytes: t.gzBody.length,
    series: text.split('\n').filter((l) => l.startsWith('peerdb_')).length,
    block: median(t.blocks),
    maxBlock: Math.max(...t.blocks),
    idleBlock: median(idle),
    rss: value(text, 'process_resident_memory_bytes'),
    fresh: t.fresh.filter(Boolean).length / t.fresh.length,
    age: median(sorted),
    maxAge: sorted.at(-1)!,
    visible: median(t.visible),
    maxVisible: Math.max(...t.visible),
  };
}

/**
 * From a change's commit until the start of the first scrape that holds it, scraping back to back:
 * 0 when the first scrape after the commit holds it, else at least one scrape's time. A scrape
 * just before the change finds the cache current, as a scraper polling often would: this times
 * the daemon reading the change when told. (A scrape more than 2 s after the cache was last
 * current reads for itself and holds the change at once.)
 */
async function timeToVisible(url: string, pool: pg.Pool, mirrors: number, makeChange: Churn): Promise<number> {
  await get(`${url}/metrics`, false);
  const change = await makeChange(pool, mirrors);
  const committed = performance.now();
  for (;;) {
    const started = performance.now();
    if ((await get(`${url}/metrics`, false)).body.includes(change)) return started - committed;
  }
}

/** A change to the catalog between scrapes; returns a series line a scrape holds once it shows the change. */
export type Churn = (pool: pg.Pool, mirrors: number) => Promise<string>;

export interface MeasureOptions {
  /** The change made before each half round (default: churn, 1% of the mirrors). */
  churn?: Churn;
  /** The Accept header of every scrape, plain and gzip (default none: the text format). */
  accept?: string;
  /** The floor's Content-Type (default the text format's). */
  contentType?: string;
}

/**
 * `times` rounds over the daemons at `urls` and the floor: 1% of the fleet changes, every daemon
 * is scraped plain, each beside a scrape of the floor; 1% more changes, every daemon is scraped
 * with gzip, each beside a scrape of the gzip floor. Cold first scrapes apart. The floor hands out
 * the last daemon's bytes.
 */
export async function measure(
  urls: { label: string; url: string }[], pool: pg.Pool, mirrors: number, times: number, options: MeasureOptions = {},
): Promise<Measured[]> {
  const makeChange = options.churn ?? churn;
  const { accept } = options;
  const targets: Target[] = [];
  for (const { label, url } of urls) {
    const cold = await get(`${url}/metrics`, false, accept);
    targets.push({
      label, url, cold, plain: [], gzip: [], blocks: [], body: cold.body, gzBody: (await get(`${url}/metrics`, true, accept)).body,
      fresh: [], ages: [], visible: [], floorPlain: [], floorGzip: [],
    });
  }
  const mine = targets[targets.length - 1]!;
  const floor = await startFloor(mine.body, false, options.contentType);
  const gzFloor = await startFloor(mine.gzBody, true, options.contentType);
  /**
   * Half a round: 1% of the fleet changes, then every daemon in turn, each with a scrape of the floor
   * right beside it (before it in odd rounds, after it in even ones), in one encoding. Right after
   * a change the daemons' reads of it load the cores, and less so as the round goes on: a floor
   * scraped at one place in the round would meet other load than the daemon it is compared with.
   */
  const scrapeAll = async (round: number, gzip: boolean) => {
    const change = await makeChange(pool, mirrors);
    const floorFirst = round % 2 === 1;
    for (const t of rotate(targets, round)) {
      const scrapeFloor = async () => (gzip ? t.floorGzip : t.floorPlain).push((await get((gzip ? gzFloor : floor).url, gzip, accept)).ms);
      if (floorFirst) await scrapeFloor();
      const askedAt = Date.now();
      const got = await get(`${t.url}/metrics`, gzip, accept);
      if (gzip) {
        t.gzip.push(got.ms);
        t.gzBody = got.body;
      } else {
        t.plain.push(got.ms);
        t.body = got.body;
        const text = got.body.toString('utf8');
        t.blocks.push(value(text, 'nodejs_eventloop_lag_max_seconds') * 1000);
        t.fresh.push(text.includes(change));
        t.ages.push(askedAt - value(text, 'mirrorstate_snapshot_timestamp_seconds') * 1000);
      }
      if (!floorFirst) await scrapeFloor();
    }
  };
  try {
    for (let i = 0; i < times; i++) {
      await scrapeAll(i, false);
      await scrapeAll(i, true);
      process.stderr.write(`\r  ${mirrors.toLocaleString('en')} mirrors: round ${i + 1}/${times} (${targets.map((t) => `${t.label} ${t.plain.at(-1)!.toFixed(0)} ms`).join(', ')}, floor ${mine.floorPlain.at(-1)!.toFixed(0)} ms)   `);
    }
    process.stderr.write('\n');
  } finally {
    floor.stop();
    gzFloor.stop();
  }
  for (let i = 0; i < VISIBILITY_TRIALS; i++) {
    for (const t of rotate(targets, i)) {
      await new Promise((r) => setTimeout(r, QUIET_MS));
      t.visible.push(await timeToVisible(t.url, pool, mirrors, makeChange));
    }
    process.stderr.write(`\r  ${mirrors.toLocaleString('en')} mirrors: change visible after, trial ${i + 1}/${VISIBILITY_TRIALS}   `);
  }
  process.stderr.write('\n');
  const measured: Measured[] = [];
  for (const t of targets) measured.push(await settle(t));
  return measured;
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
  const shards: { shard: number; p50: number; unsharded: number; ratio: number; series: number; rss: number }[] = [];
  try {
    await migrate(pool, 'mirrorstate', logger);
    let filled = 0;
    for (const mirrors of SIZES) {
      await fill(pool, filled + 1, mirrors);
      filled = mirrors;
      await pool.query('analyze mirrorstate.mirrors');
      const daemons: DaemonProcess[] = [];
      try {
        if (baselineCli) daemons.push(await startDaemon({ databaseUrl: url, cli: baselineCli }));
        daemons.push(await startDaemon({ databaseUrl: url }));
        const labels = baselineCli ? ['baseline', 'this'] : ['this'];
        const measured = await measure(daemons.map((d, i) => ({ label: labels[i]!, url: d.url })), pool, mirrors, SCRAPES);
        if (baselineCli) baselines.push({ mirrors, m: measured[0]! });
        results.push({ mirrors, m: measured[measured.length - 1]! });
      } finally {
        await Promise.all(daemons.map((d) => d.stop()));
      }
    }
    const mirrors = SIZES[SIZES.length - 1]!;
    const daemons: DaemonProcess[] = [];
    try {
      daemons.push(await startDaemon({ databaseUrl: url }));
      for (let i = 0; i < SHARDS; i++) {
        daemons.push(await startDaemon({ databaseUrl: url, env: { MIRRORSTATE_METRICS_SHARD: `${i}/${SHARDS}` } }));
      }
      for (const d of daemons) await get(`${d.url}/metrics`, false);
      const times = daemons.map((): number[] => []);
      const texts = daemons.map(() => '');
      for (let k = 0; k < SCRAPES; k++) {
        await churn(pool, mirrors);
        for (const i of rotate(daemons.map((_, i) => i), k)) {
          const got = await get(`${daemons[i]!.url}/metrics`, false);
          times[i]!.push(got.ms);
          texts[i] = got.body.toString('utf8');
        }
        process.stderr.write(`\r  ${SHARDS} shards of ${mirrors.toLocaleString('en')}: round ${k + 1}/${SCRAPES}   `);
      }
      process.stderr.write('\n');
      const whole = times[0]!;
      for (let i = 0; i < SHARDS; i++) {
        const own = times[i + 1]!;
        shards.push({
          shard: i, p50: median(own), unsharded: median(whole), ratio: median(own.map((x, k) => x / whole[k]!)),
          series: texts[i + 1]!.split('\n').filter((l) => l.startsWith('peerdb_')).length, rss: value(texts[i + 1]!, 'process_resident_memory_bytes'),
        });
      }
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
    }
  } finally {
    await pool.end();
    await admin(`drop database if exists ${name} with (force)`);
  }

  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log('| daemon | mirrors | series | body | first scrape | plain p50 | static floor p50 | ratio (median of rounds) | gzip body | gzip p50 | static gzip floor p50 | gzip vs plain floor | loop block p50 (max) | idle loop | daemon RSS after | held the round\'s change | data age p50 (max) | change visible after p50 (max) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const rows = results.flatMap((r, i) => [...(baselines[i] ? [{ ...baselines[i]!, who: 'baseline' }] : []), { ...r, who: 'this' }]);
  for (const { mirrors, m, who } of rows) {
    console.log(
      `| ${who} | ${mirrors.toLocaleString('en')} | ${m.series.toLocaleString('en')} | ${(m.bytes / 1e6).toFixed(1)} MB | ${ms(m.cold)} | ${ms(m.plain)} | ${ms(m.floorPlain)} | ` +
        `${m.ratio.toFixed(2)}× | ${(m.gzipBytes / 1e6).toFixed(2)} MB | ${ms(m.gzip)} | ${ms(m.floorGzip)} | ${m.gzipRatio.toFixed(2)}× | ${ms(m.block)} (${ms(m.maxBlock)}) | ${ms(m.idleBlock)} | ${mib(m.rss)} | ` +
        `${(m.fresh * 100).toFixed(0)}% | ${ms(m.age)} (${ms(m.maxAge)}) | ${ms(m.visible)} (${ms(m.maxVisible)}) |`,
    );
  }
  if (results.length > 1) {
    const [a, b] = [results[0]!, results[results.length - 1]!];
    console.log(`\nGrowth ${a.mirrors.toLocaleString('en')} → ${b.mirrors.toLocaleString('en')} mirrors (${b.mirrors / a.mirrors}×): plain p50 ${(b.m.plain / a.m.plain).toFixed(1)}×, RSS ${(b.m.rss / a.m.rss).toFixed(1)}×.`);
  }
  console.log(`\n| ${SHARDS} shards of ${SIZES[SIZES.length - 1]!.toLocaleString('en')} mirrors | series | plain p50 | unsharded p50, same rounds | vs unsharded (median of rounds) | RSS |`);
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const s2 of shards) {
    console.log(`| shard ${s2.shard}/${SHARDS} | ${s2.series.toLocaleString('en')} | ${ms(s2.p50)} | ${ms(s2.unsharded)} | ${s2.ratio.toFixed(2)}× | ${mib(s2.rss)} |`);
  }
  console.log(
    `\nScrapes: HTTP round trips of the real daemon process from this process (raw bytes, nothing decoded), catalog read included, ${CHURN * 100}% of mirrors changed before each round; ${SCRAPES} rounds, each scraping every daemon and the floor back to back.` +
      '\nStatic floor: a bare node:http server in its own process handing out the same bytes (plain, or the same gzip bytes), same client, in the same rounds. Ratios are medians of the rounds\' ratios.' +
      '\nHeld the round\'s change: plain scrapes whose text held a series the round\'s change wrote. Data age: scrape start − mirrorstate_snapshot_timestamp_seconds (negative: read after the request arrived).' +
      `\nChange visible after: ${VISIBILITY_TRIALS} changes, each after ${QUIET_MS} ms without one and right after a scrape, from the commit to the start of the first scrape that shows it, scraping back to back (0: the first scrape after the commit did).` +
      '\nLoop block: the daemon\'s nodejs_eventloop_lag_max_seconds per scrape after the first, median (max); idle: the same over 300 ms without work. RSS: process_resident_memory_bytes after the scrapes.' +
      `\nTargets (issue 10): 10,000 plain ≤ 1.2× floor, block ≤ 20 ms, RSS ≤ 150 MB; 100,000 ≤ 10× of 10,000 in time and RSS, first scrape ≤ 10 s; each of 4 shards ≤ 0.3× unsharded.` +
      `\nMachine: load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${availableParallelism()} CPUs.`,
  );
}
export default { name: 'scrape', run } satisfies BenchSection;
