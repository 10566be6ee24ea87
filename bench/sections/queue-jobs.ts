/**
 * `npm run bench queue-jobs`: what mirrorstate_queue_jobs costs the queue database per read, with a
 * million updates queued. The previous read counted every job row by state; the current one reads
 * pg-boss's cached counts (kept by its monitor) once a queue is past EXACT_COUNT_MAX_JOBS. Same
 * database, same backlog, side by side.
 */
import { createLogger } from '../../src/log.js';
import { countQueueJobs, readCachedQueueCounts, readQueueJobs } from '../../src/metrics/queueJobs.js';
import { createBoss, ensureQueues, UPDATES_QUEUE } from '../../src/queue/boss.js';
import { createTestDatabase } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';

const JOBS = 1_000_000;
const RUNS = 7;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function run(): Promise<void> {
  const db = await createTestDatabase('bench_queue_jobs');
  const boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 3, logger: createLogger('silent'), worker: true });
  try {
    await boss.start();
    await ensureQueues(boss);
    for (let from = 0; from < JOBS; from += 100_000) {
      await db.pool.query(
        `insert into pgboss.job (name, data)
         select $1, jsonb_build_object('mirror', 'mirror_' || g, 'status', 'running', 'observedAt', now())
           from generate_series($2::int, $3::int) g`,
        [UPDATES_QUEUE, from, Math.min(from + 100_000, JOBS) - 1],
      );
    }
    await db.pool.query('vacuum analyze pgboss.job');
    const db2 = boss.getDb();
    const deadline = Date.now() + 120_000;
    while ((await readCachedQueueCounts(db2, 'pgboss')).find((c) => c.queue === UPDATES_QUEUE)?.total !== JOBS) {
      if (Date.now() > deadline) throw new Error("pg-boss's monitor did not count the queue within 120 s");
      await new Promise((r) => setTimeout(r, 500));
    }
    const rows: string[] = [];
    for (const [label, read] of [
      ['every job row counted by state (before)', () => countQueueJobs(db2, 'pgboss')],
      ["pg-boss's cached counts past 50,000 jobs (now)", () => readQueueJobs(db2, 'pgboss')],
    ] as const) {
      const times: number[] = [];
      let created = 0;
      for (let i = 0; i < RUNS; i++) {
        const started = performance.now();
        const counts = await read();
        times.push(performance.now() - started);
        created = counts.filter((c) => c.queue === UPDATES_QUEUE && c.state === 'created').reduce((n, c) => n + c.jobs, 0);
      }
      if (created !== JOBS) throw new Error(`${label}: counted ${created} created jobs, not ${JOBS}`);
      rows.push(`| ${label} | ${JOBS.toLocaleString('en')} | ${median(times).toFixed(2)} | ${Math.max(...times).toFixed(2)} |`);
    }
    console.log(`| read (median of ${RUNS}) | queued jobs | ms | max ms |\n|---|---:|---:|---:|`);
    for (const row of rows) console.log(row);
  } finally {
    await boss.stop({ graceful: false });
    await db.drop();
  }
}

export default { name: 'queue-jobs', run } satisfies BenchSection;
