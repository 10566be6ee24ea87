/**
 * `npm run bench queue-jobs`: what mirrorstate_queue_jobs costs the queue database per read, with a
 * million updates queued. The previous read counted every job row by state; the current one reads
 * pg-boss's cached counts (kept by its monitor) once a queue is past EXACT_COUNT_MAX_JOBS. Same
 * database, same backlog, side by side.
 *
 * The cache is not free: pg-boss's monitor recounts it every monitor interval (boss.ts) with one
 * aggregate over the whole job table, whether anyone reads it or not, and the same pass fails expired
 * jobs and jobs whose heartbeat stopped. So the run first watches pg-boss's own monitor keep the cache
 * (how often it recounts, how old the counts get, whether its vacuum-safety backoff engages), then
 * stops pg-boss and times the gauge's reads and the monitor's statements, built as pg-boss builds
 * them, side by side on the quiet database.
 */
import pg from 'pg';
import * as plans from 'pg-boss/dist/plans.js';
import { createLogger } from '../../src/log.js';
import { countQueueJobs, readCachedQueueCounts, readQueueJobs, REPORTED_QUEUES } from '../../src/queue/jobCounts.js';
import { createBoss, ensureQueues, SUPERVISE_INTERVAL_SECONDS, UPDATES_QUEUE } from '../../src/queue/boss.js';
import { createTestDatabase } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';

const JOBS = 1_000_000;
const RUNS = 7;
const SCHEMA = 'pgboss';
/** How long pg-boss's own monitor is watched keeping the cache. */
const WATCH_MS = 60_000;
const SAMPLE_EVERY_MS = 200;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A simple-protocol query's rows, flattened over its statements as pg-boss does. */
async function rowsOf(pool: pg.Pool, sql: string): Promise<Record<string, unknown>[]> {
  const result = (await pool.query(sql)) as unknown as pg.QueryResult | pg.QueryResult[];
  return Array.isArray(result) ? result.flatMap((r) => r.rows) : result.rows;
}

/**
 * The statements of pg-boss's monitor pass over the schema's queues, as its #supervisePass and
 * #monitor build them: the queues grouped by job table, one cacheQueueStats per table (throughput
 * off: the daemon leaves persistQueueStats unset), then expiry and heartbeat failure.
 */
async function monitorStatements(pool: pg.Pool): Promise<{ recount: string[]; expiry: string[] }> {
  const { rows } = await pool.query<{ name: string; table: string }>(`select name, table_name as table from ${SCHEMA}.queue order by name`);
  const tables = new Map<string, string[]>();
  for (const { name, table } of rows) tables.set(table, [...(tables.get(table) ?? []), name]);
  const window = { resetMax: plans.deltaResetMax(SUPERVISE_INTERVAL_SECONDS) };
  const recount: string[] = [];
  const expiry: string[] = [];
  for (const [table, names] of tables) {
    recount.push(plans.cacheQueueStats(SCHEMA, table, names, false, false, window));
    expiry.push(plans.failJobsByTimeout(SCHEMA, table, names, false), plans.failJobsByHeartbeat(SCHEMA, table, names, false));
  }
  return { recount, expiry };
}

/**
 * One recount as pg-boss runs it; returns the updates queue's queued count as written. The statement
 * takes pg-boss's stats try-lock and writes nothing without it (no rows), which with pg-boss stopped
 * would mean something else holds it.
 */
async function recount(pool: pg.Pool, statements: string[]): Promise<number> {
  const rows: Record<string, unknown>[] = [];
  for (const sql of statements) rows.push(...(await rowsOf(pool, sql)));
  const updates = rows.find((r) => r.name === UPDATES_QUEUE);
  if (!updates) throw new Error("the recount did not get pg-boss's stats lock");
  return Number(updates.queuedCount);
}

interface CacheWatch {
  /** Age of the reported queues' oldest monitor_on at each sample, seconds. */
  ages: number[];
  /** Distinct monitor_on stamps seen: pg-boss's recounts in the window. */
  recounts: number;
  seconds: number;
}

/** Samples the cached counts' age for WATCH_MS. */
async function watchCache(pool: pg.Pool): Promise<CacheWatch> {
  const started = performance.now();
  const ages: number[] = [];
  const stamps = new Set<string>();
  while (performance.now() - started < WATCH_MS) {
    const { rows } = await pool.query<{ age: number; stamp: string }>(
      `select extract(epoch from clock_timestamp() - min(monitor_on))::float8 as age, min(monitor_on)::text as stamp
         from ${SCHEMA}.queue where name = any($1::text[])`,
      [[...REPORTED_QUEUES]],
    );
    ages.push(rows[0]!.age);
    stamps.add(rows[0]!.stamp);
    await sleep(SAMPLE_EVERY_MS);
  }
  // The first stamp predates the window.
  return { ages, recounts: stamps.size - 1, seconds: (performance.now() - started) / 1000 };
}

async function run(): Promise<void> {
  const db = await createTestDatabase('bench_queue_jobs');
  const boss = createBoss({ connectionString: db.url, schema: SCHEMA, max: 3, logger: createLogger('silent'), worker: true });
  const warnings = new Map<string, number>();
  boss.on('warning', ({ message }: { message: string }) => {
    const kind = message.replace(/^Warning: /, '').split(/[:.]/)[0]!;
    warnings.set(kind, (warnings.get(kind) ?? 0) + 1);
  });
  try {
    await boss.start();
    await ensureQueues(boss);
    for (let from = 0; from < JOBS; from += 100_000) {
      await db.pool.query(
        `insert into ${SCHEMA}.job (name, data)
         select $1, jsonb_build_object('mirror', 'mirror_' || g, 'status', 'running', 'observedAt', now())
           from generate_series($2::int, $3::int) g`,
        [UPDATES_QUEUE, from, Math.min(from + 100_000, JOBS) - 1],
      );
    }
    await db.pool.query(`vacuum analyze ${SCHEMA}.job`);
    const deadline = Date.now() + 120_000;
    while ((await readCachedQueueCounts(boss.getDb(), SCHEMA)).find((c) => c.queue === UPDATES_QUEUE)?.total !== JOBS) {
      if (Date.now() > deadline) throw new Error("pg-boss's monitor did not count the queue within 120 s");
      await sleep(500);
    }

    // pg-boss alone first: how often its monitor recounts, how old the cache gets, and whether its
    // backoff engages, with nothing else on the database.
    const watch = await watchCache(db.pool);
    const backoff = await db.pool.query<{ until: string | null }>(`select monitor_backoff_on::text as until from ${SCHEMA}.version`);
    // Then every statement timed on a quiet database: pg-boss stopped, its passes neither contend
    // for the cores nor hold the stats lock.
    await boss.stop({ graceful: false });
    const queueDb = { executeSql: (text: string, values?: unknown[]) => db.pool.query(text, values) };
    const statements = await monitorStatements(db.pool);
    const rows: string[] = [];
    /** Times `op`, which returns the created jobs it counted (checked), or null if it counts none. */
    const timeRow = async (label: string, op: () => Promise<number | null>) => {
      const times: number[] = [];
      let created: number | null = null;
      for (let i = 0; i < RUNS; i++) {
        const started = performance.now();
        created = await op();
        times.push(performance.now() - started);
      }
      if (created !== null && created !== JOBS) throw new Error(`${label}: counted ${created} created jobs, not ${JOBS}`);
      rows.push(`| ${label} | ${JOBS.toLocaleString('en')} | ${median(times).toFixed(2)} | ${Math.max(...times).toFixed(2)} |`);
      return median(times);
    };
    const createdOf = (counts: { queue: string; state: string; jobs: number }[]) =>
      counts.filter((c) => c.queue === UPDATES_QUEUE && c.state === 'created').reduce((n, c) => n + c.jobs, 0);
    await timeRow('every job row counted by state (before)', async () => createdOf(await countQueueJobs(queueDb, SCHEMA)));
    await timeRow("pg-boss's cached counts past 50,000 jobs (now)", async () => createdOf(await readQueueJobs(queueDb, SCHEMA)));
    const recountMs = await timeRow("pg-boss's monitor recounting that cache (cacheQueueStats)", () => recount(db.pool, statements.recount));
    const expiryMs = await timeRow("the rest of the monitor's pass (expiry, heartbeat failure)", async () => {
      for (const sql of statements.expiry) await rowsOf(db.pool, sql);
      return null;
    });

    console.log(`| statement (median of ${RUNS}) | queued jobs | ms | max ms |\n|---|---:|---:|---:|`);
    for (const row of rows) console.log(row);
    const every = watch.seconds / Math.max(watch.recounts, 1);
    const perHour = (statementMs: number) => (statementMs / 1000) * (3600 / every);
    const pass = perHour(recountMs + expiryMs);
    console.log(
      `\npg-boss's monitor (interval ${SUPERVISE_INTERVAL_SECONDS} s) recounted ${watch.recounts} times in ${watch.seconds.toFixed(0)} s, every ${every.toFixed(1)} s: ` +
        `per hour ${perHour(recountMs).toFixed(0)} s of database time in the recount, ${pass.toFixed(0)} s in the whole pass ` +
        `(${((pass / 3600) * 100).toFixed(0)}% of one core), once per cluster.`,
    );
    const ages = [...watch.ages].sort((a, b) => a - b);
    console.log(
      `Cached counts' age (oldest monitor_on of ${REPORTED_QUEUES.join(', ')}), ${ages.length} samples: ` +
        `median ${median(ages).toFixed(2)} s, max ${ages.at(-1)!.toFixed(2)} s.`,
    );
    const warned = [...warnings].map(([kind, n]) => `${n} × ${kind}`).join(', ') || 'none';
    const until = backoff.rows[0]?.until;
    console.log(`Monitor backoff: ${until ? `engaged, until ${until}` : 'never engaged (version.monitor_backoff_on null)'}; pg-boss's warnings: ${warned}.`);
  } finally {
    await boss.stop({ graceful: false });
    await db.drop();
  }
}

export default { name: 'queue-jobs', run } satisfies BenchSection;
