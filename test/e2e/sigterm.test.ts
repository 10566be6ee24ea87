/**
 * SIGTERM mid-drain: the daemon stops taking jobs, commits the batches in hand and exits 0. No job
 * is left active or handed back failed, and what was committed matches the jobs settled (a written
 * job is deleted from the queue in the same transaction, see consumer.ts).
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { startProducer } from '../helpers/queue.js';

let db: TestDatabase;
let producer: PgBoss;

beforeAll(async () => {
  db = await createTestDatabase('sigterm');
  const first = await startDaemon({ databaseUrl: db.url });
  await first.stop();
  producer = await startProducer(db.url);
});
afterAll(async () => {
  await producer?.stop({ graceful: false });
  await db?.drop();
});

it('commits the batches in hand and exits 0', async () => {
  const start = Date.now() - 3_600_000;
  const jobs = Array.from({ length: 20_000 }, (_, i) => ({
    data: { mirror: `m${i % 500}`, status: i % 3 ? 'running' : 'paused', observedAt: new Date(start + i).toISOString() },
  }));
  for (let i = 0; i < jobs.length; i += 1000) await producer.insert('mirrorstate-updates', jobs.slice(i, i + 1000));

  const daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_BATCH_SIZE: '200' } });
  const journal = async () => Number((await db.pool.query('select count(*) from mirrorstate.journal')).rows[0].count);
  await waitFor('the drain to be under way', async () => (await journal()) > 1000, 60_000, 5);
  expect(await daemon.stop('SIGTERM')).toBe(0);

  const { rows } = await db.pool.query(
    `select state, count(*)::int as n, max(retry_count)::int as retries from pgboss.job where name = 'mirrorstate-updates' group by state`,
  );
  const byState = Object.fromEntries(rows.map((r) => [r.state, r]));
  expect(byState.active).toBeUndefined();
  expect(byState.failed).toBeUndefined();
  expect(byState.retry).toBeUndefined();
  expect(byState.completed).toBeUndefined();
  expect(byState.created.retries).toBe(0);
  expect(byState.created.n).toBeGreaterThan(0); // it stopped before the end
  // Exactly the settled (deleted) jobs were committed: one journal row each.
  expect(await journal()).toBe(jobs.length - byState.created.n);
  expect(daemon.output()).toMatch(/finishing the batches in hand/);
});
