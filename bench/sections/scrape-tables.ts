/**
 * `npm run bench scrape-tables`: GET /metrics of a fleet of 5,000 mirrors with 20 tables each
 * (100,000 tables, every per-table value reported), the real daemon processes side by side in the
 * same rounds (scrape.ts's measure: each half round changes 1% of the mirrors, then scrapes every
 * daemon, in an order that alternates, each right beside a scrape of the static floor):
 *
 *   - `all families`: this build with every family on, against the static floor (a bare node:http
 *     server handing out the same bytes, plain and the same gzip bytes);
 *   - `tables denied`: this build with MIRRORSTATE_METRIC_DENYLIST=peerdb_mirror_table_.* (the six
 *     per-table families; `peerdb_mirror_tables`, the per-mirror count, stays);
 *   - `baseline`: BENCH_BASELINE_CLI, another build's CLI entry (the build before tables, for the
 *     denied daemon's "within 10%").
 *
 * Every scrape sends Prometheus' own Accept header (OpenMetrics first), so the daemons answer in the
 * format Prometheus gets; the gzip half sends `Accept-Encoding: gzip` as Prometheus does. Each
 * change updates 50 mirrors and every table of theirs in one transaction, as the batch writer
 * writes an update's whole table set with its mirror. RSS: process_resident_memory_bytes after the
 * rounds, and the peak of the process's VmRSS sampled every 200 ms from its start.
 * BENCH_SCRAPES sets the rounds (default 15).
 */
import { availableParallelism, loadavg } from 'node:os';
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { type DaemonOptions, type DaemonProcess, startDaemon } from '../../test/helpers/daemon.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';
import { ms } from '../lib.js';
import { sampler } from './memory.js';
import { fill, measure, type Measured, median } from './scrape.js';

const MIRRORS = 5_000;
const TABLES_PER_MIRROR = 20;
const SCRAPES = Number(process.env.BENCH_SCRAPES ?? 15);
const CHURN = 0.01;
const DENY = 'peerdb_mirror_table_.*';
/** Prometheus' scrape request's Accept (its default scrape protocols: OpenMetrics first). */
export const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Every table of mirrors `from`..`to` with each value reported; one in 97 carries an error. */
export async function fillTables(pool: pg.Pool, from: number, to: number): Promise<void> {
  for (let start = from; start <= to; start += 500) {
    const end = Math.min(to, start + 499);
    await pool.query(
      `insert into mirrorstate.mirror_tables (mirror, table_name, rows_synced, last_synced_at, snapshot_partitions,
         snapshot_partitions_synced, snapshot_rows_synced, snapshot_started_at, snapshot_finished_at, error_class, error_message)
       select 'mirror_' || lpad(i::text, 6, '0'), 'public.customer_orders_' || lpad(j::text, 2, '0'),
         i::bigint * j * 1000, now() - make_interval(secs => (i * $3 + j) * 0.37), 10 + j, least(10 + j, (i + j) % 40),
         j::bigint * 250000 + i, now() - interval '2 days', case when (i + j) % 40 >= 10 + j then now() - interval '1 day' end,
         case when (i * $3 + j) % 97 = 0 then 'connection' end, case when (i * $3 + j) % 97 = 0 then 'boom' end
       from generate_series($1::int, $2::int) as i, generate_series(1, $3::int) as j`,
      [start, end, TABLES_PER_MIRROR],
    );
    await pool.query(
      `update mirrorstate.mirrors set tables_reported = true where mirror between 'mirror_' || lpad($1::text, 6, '0') and 'mirror_' || lpad($2::text, 6, '0')`,
      [start, end],
    );
    process.stderr.write(`\r  filling the tables: ${((end - from + 1) * TABLES_PER_MIRROR).toLocaleString('en')} / ${((to - from + 1) * TABLES_PER_MIRROR).toLocaleString('en')}`);
  }
  process.stderr.write('\n');
}

/**
 * Changes 1% of the mirrors and every table of theirs in one transaction (the batch writer writes
 * an update's table set with its mirror's row); returns one changed mirror series as a scrape shows
 * it (one every daemon serves, denied tables or not).
 */
export async function churnWithTables(pool: pg.Pool, mirrors: number): Promise<string> {
  const { rows } = await pool.query<{ mirror: string; rows_synced: string }>(
    `with m as (
       update mirrorstate.mirrors set lag_seconds = random() * 60, rows_synced = coalesce(rows_synced, 0) + 100,
         updated_at = clock_timestamp()
       where mirror in (select 'mirror_' || lpad((1 + floor(random() * $1))::int::text, 6, '0') from generate_series(1, $2))
       returning mirror, rows_synced::text
     ), t as (
       update mirrorstate.mirror_tables mt set rows_synced = mt.rows_synced + 100, last_synced_at = clock_timestamp(),
         snapshot_rows_synced = mt.snapshot_rows_synced + 10, updated_at = clock_timestamp()
       from m where mt.mirror = m.mirror
     )
     select mirror, rows_synced from m`,
    [mirrors, Math.max(1, Math.round(mirrors * CHURN))],
  );
  return `\npeerdb_mirror_rows_synced_total{mirror="${rows[0]!.mirror}"} ${rows[0]!.rows_synced}\n`;
}

interface Row {
  label: string;
  m: Measured;
  peak: number;
}

async function run(): Promise<void> {
  const name = `ms_bench_scrape_tables_${process.pid}`;
  await admin(`create database ${name}`);
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const baselineCli = process.env.BENCH_BASELINE_CLI;
  const rows: Row[] = [];
  const load = loadavg()[0]!.toFixed(1);
  try {
    await migrate(pool, 'mirrorstate', createLogger('silent'));
    await fill(pool, 1, MIRRORS);
    await fillTables(pool, 1, MIRRORS);
    await pool.query('analyze mirrorstate.mirrors');
    await pool.query('analyze mirrorstate.mirror_tables');
    const daemons: { label: string; d: DaemonProcess; rss: ReturnType<typeof sampler> }[] = [];
    const start = async (label: string, options: Omit<DaemonOptions, 'databaseUrl'>) => {
      const d = await startDaemon({ databaseUrl: url, ...options });
      // From its start: the first catalog read runs as soon as it listens, before any scrape.
      daemons.push({ label, d, rss: sampler(d.proc.pid!) });
    };
    try {
      if (baselineCli) await start('baseline', { cli: baselineCli });
      await start('tables denied', { env: { MIRRORSTATE_METRIC_DENYLIST: DENY } });
      // Last: the floor hands out its bytes.
      await start('all families', {});
      try {
        const measured = await measure(daemons.map(({ label, d }) => ({ label, url: d.url })), pool, MIRRORS, SCRAPES, {
          churn: churnWithTables, accept: PROMETHEUS_ACCEPT, contentType: OPENMETRICS,
        });
        measured.forEach((m, i) => rows.push({ label: daemons[i]!.label, m, peak: daemons[i]!.rss.peak }));
      } finally {
        for (const { rss } of daemons) rss.stop();
      }
    } finally {
      await Promise.all(daemons.map(({ d }) => d.stop()));
    }
  } finally {
    await pool.end();
    await admin(`drop database if exists ${name} with (force)`);
  }

  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  const all = rows.find((r) => r.label === 'all families')!;
  const tables = (MIRRORS * TABLES_PER_MIRROR).toLocaleString('en');
  console.log(`\n/metrics with every family on, ${MIRRORS.toLocaleString('en')} mirrors × ${TABLES_PER_MIRROR} tables (${tables} tables), Prometheus' Accept (OpenMetrics), against a static server handing out the same bytes:\n`);
  console.log('| daemon | series | body | gzip body | first scrape | gzip p50 | static gzip floor p50 | gzip vs gzip floor (median of rounds) | plain p50 | static plain floor p50 | plain vs plain floor | loop block p50 (max) | RSS after | RSS peak | held the round\'s change | change visible after p50 (max) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  {
    const { m, peak } = all;
    console.log(
      `| all families | ${m.series.toLocaleString('en')} | ${mb(m.bytes)} | ${mb(m.gzipBytes)} | ${ms(m.cold)} | ${ms(m.gzip)} | ${ms(m.floorGzip)} | ${m.gzipFloorRatio.toFixed(2)}× | ` +
        `${ms(m.plain)} | ${ms(m.floorPlain)} | ${m.ratio.toFixed(2)}× | ${ms(m.block)} (${ms(m.maxBlock)}) | ${mib(m.rss)} | ${mib(peak)} | ${(m.fresh * 100).toFixed(0)}% | ${ms(m.visible)} (${ms(m.maxVisible)}) |`,
    );
  }
  const base = rows.find((r) => r.label === 'baseline');
  const against = (m: Measured, times: (x: Measured) => number[]) =>
    base === undefined ? '–' : `${median(times(m).map((x, i) => x / times(base.m)[i]!)).toFixed(2)}×`;
  console.log(`\nThe per-table families denied (MIRRORSTATE_METRIC_DENYLIST=${DENY}), same rounds, against the baseline build${baselineCli ? ` (${baselineCli})` : ' (none: set BENCH_BASELINE_CLI)'}:\n`);
  console.log('| daemon | series | body | gzip body | first scrape | gzip p50 | vs baseline (median of rounds) | plain p50 | vs baseline | loop block p50 (max) | RSS after | vs baseline | RSS peak | vs baseline |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows.filter((x) => x !== all)) {
    const { m, peak } = r;
    const rss = base === undefined ? '–' : `${(m.rss / base.m.rss).toFixed(2)}×`;
    const peakRatio = base === undefined ? '–' : `${(peak / base.peak).toFixed(2)}×`;
    console.log(
      `| ${r.label} | ${m.series.toLocaleString('en')} | ${mb(m.bytes)} | ${mb(m.gzipBytes)} | ${ms(m.cold)} | ${ms(m.gzip)} | ${against(m, (x) => x.gzipTimes)} | ` +
        `${ms(m.plain)} | ${against(m, (x) => x.plainTimes)} | ${ms(m.block)} (${ms(m.maxBlock)}) | ${mib(m.rss)} | ${rss} | ${mib(peak)} | ${peakRatio} |`,
    );
  }
  console.log(
    `\nScrapes: HTTP round trips of the real daemon processes from this process (raw bytes, nothing decoded), Accept: Prometheus' (${PROMETHEUS_ACCEPT}); gzip: also Accept-Encoding: gzip. ` +
      `${SCRAPES} rounds; before each half round ${CHURN * 100}% of the mirrors and all their tables changed in one transaction. Ratios are medians of the rounds' ratios.` +
      '\nStatic floor: a bare node:http server in its own process handing out the all-families daemon\'s bytes (plain, or its same gzip bytes), same client, scraped right beside each daemon scrape (before it in odd rounds, after it in even ones).' +
      '\nRSS after: process_resident_memory_bytes after the rounds; peak: VmRSS sampled every 200 ms from the daemon\'s start.' +
      '\nTargets (issue 18): every family on, gzip ≤ 1.2× the floor and RSS ≤ 300 MB; the per-table families denied, scrape and RSS within 10% of the build before tables.' +
      `\nMachine: load average ${load} → ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${availableParallelism()} CPUs.`,
  );
}

export default { name: 'scrape-tables', run } satisfies BenchSection;
