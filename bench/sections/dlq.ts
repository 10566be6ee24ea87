/**
 * `npm run bench dlq`: what a redrive costs. `mirrorstate dlq redrive --all` moves 500 letters per
 * transaction (one delete, one pg-boss insert), side by side with the naive baseline of one
 * transaction per letter, on the same database and the same kind of letters. Nothing consumes the
 * updates queue meanwhile, so this is the redrive alone.
 */
import type { PgBoss } from 'pg-boss';
import { createPool } from '../../src/db/pool.js';
import { REDRIVE_BATCH, redriveSelection } from '../../src/cli/dlq.js';
import { createLogger } from '../../src/log.js';
import { createBoss, DEAD_LETTER_QUEUE, ensureQueues } from '../../src/queue/boss.js';
import { createTestDatabase } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';

const LETTERS = { batched: 20_000, naive: 2_000 } as const;

async function fill(boss: PgBoss, n: number): Promise<void> {
  for (let from = 0; from < n; from += 1000) {
    const jobs = Array.from({ length: Math.min(1000, n - from) }, (_, i) => ({
      data: {
        reason: 'invalid update: observedAt is more than 5 minutes in the future of the daemon clock',
        errors: [{ field: 'observedAt', message: 'is more than 5 minutes in the future of the daemon clock' }],
        update: { mirror: `mirror_${from + i}`, status: 'running', observedAt: '2030-01-01T00:00:00Z', rowsSynced: from + i },
        job: { id: '00000000-0000-4000-8000-000000000000', index: i },
      },
    }));
    await boss.insert(DEAD_LETTER_QUEUE, jobs);
  }
}

async function run(): Promise<void> {
  const db = await createTestDatabase('bench_dlq');
  const logger = createLogger('silent');
  const boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 2, logger, worker: false });
  const pool = createPool(db.url, 2, 'bench-dlq', logger);
  try {
    await boss.start();
    await ensureQueues(boss);
    const ctx = { boss, pool, bossSchema: 'pgboss', out: process.stdout, err: process.stderr };
    const rows: string[] = [];
    for (const [label, batch, n] of [
      [`batched (${REDRIVE_BATCH} per transaction)`, REDRIVE_BATCH, LETTERS.batched],
      ['naive (one transaction per letter)', 1, LETTERS.naive],
    ] as const) {
      await fill(boss, n);
      const started = performance.now();
      const { redriven } = await redriveSelection(ctx, {}, undefined, batch);
      const seconds = (performance.now() - started) / 1000;
      if (redriven !== n) throw new Error(`${label}: redrove ${redriven} of ${n}`);
      rows.push(`| ${label} | ${n.toLocaleString('en')} | ${seconds.toFixed(2)} | ${Math.round(n / seconds).toLocaleString('en')} |`);
    }
    console.log('| redrive | letters | seconds | letters/s |\n|---|---:|---:|---:|');
    for (const row of rows) console.log(row);
  } finally {
    await boss.stop({ graceful: false });
    await pool.end();
    await db.drop();
  }
}

export default { name: 'dlq', run } satisfies BenchSection;
