/**
 * mirrorstate_queue_jobs's read: exact by state while a queue is small, pg-boss's own cached counts
 * (its monitor's) once it is large, so its cost stops growing with the backlog. The large path must
 * not read the job table at all: here it answers while another transaction holds that table locked.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { readCachedQueueCounts, readQueueJobs } from '../../src/queue/jobCounts.js';
import { createBoss, DEAD_LETTER_QUEUE, ensureQueues, UPDATES_QUEUE } from '../../src/queue/boss.js';
import { waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
let boss: PgBoss;

beforeAll(async () => {
  db = await createTestDatabase('queuejobs');
  // A worker instance: its supervisor runs pg-boss's monitor, which keeps the cached counts.
  boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 3, logger: createLogger('silent'), worker: true });
  await boss.start();
  await ensureQueues(boss);
  await boss.insert(UPDATES_QUEUE, Array.from({ length: 40 }, (_, i) => ({ data: { mirror: `m${i}` } })));
  await boss.insert(DEAD_LETTER_QUEUE, Array.from({ length: 3 }, () => ({ data: { reason: 'x' } })));
  // Five of the updates wait for a retry, two failed for good.
  await db.pool.query(`update pgboss.job set state = 'retry' where id in (select id from pgboss.job where name = $1 limit 5)`, [UPDATES_QUEUE]);
  await db.pool.query(`update pgboss.job set state = 'failed' where id in (select id from pgboss.job where name = $1 and state = 'created' limit 2)`, [UPDATES_QUEUE]);
  await waitFor('pg-boss’s monitor to count the queues', async () => {
    const cached = await readCachedQueueCounts(boss.getDb(), 'pgboss');
    return cached.find((c) => c.queue === UPDATES_QUEUE)?.total === 40 && cached.find((c) => c.queue === DEAD_LETTER_QUEUE)?.total === 3;
  }, 30_000, 200);
});
afterAll(async () => {
  await boss?.stop({ graceful: false });
  await db?.drop();
});

const byKey = (rows: { queue: string; state: string; jobs: number }[]) =>
  Object.fromEntries(rows.filter((r) => r.jobs > 0).map((r) => [`${r.queue} ${r.state}`, r.jobs]));

describe('queue job counts', () => {
  it('counts a small queue exactly, all six states apart', async () => {
    expect(byKey(await readQueueJobs(boss.getDb(), 'pgboss'))).toEqual({
      [`${UPDATES_QUEUE} created`]: 33,
      [`${UPDATES_QUEUE} retry`]: 5,
      [`${UPDATES_QUEUE} failed`]: 2,
      [`${DEAD_LETTER_QUEUE} created`]: 3,
    });
  });

  it('serves pg-boss’s cached counts for a large queue, without reading the job table', async () => {
    const holder = await db.pool.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table pgboss.job in access exclusive mode');
      // Both queues over the limit (2 here): the cache's counts, retry within created (with 3
      // jobs, the dead-letter queue is over it too; under it, it would need the job table).
      const rows = await Promise.race([
        readQueueJobs(boss.getDb(), 'pgboss', 2),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('read the locked job table')), 3000)),
      ]);
      expect(byKey(rows)).toEqual({
        [`${UPDATES_QUEUE} created`]: 38,
        [`${UPDATES_QUEUE} failed`]: 2,
        [`${DEAD_LETTER_QUEUE} created`]: 3,
      });
    } finally {
      await holder.query('rollback');
      holder.release();
    }
  });
});
