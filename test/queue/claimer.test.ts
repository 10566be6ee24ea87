/**
 * The claimer's own mechanics, in process against a real PostgreSQL and pg-boss: it listens on
 * pg-boss's notify channel (so a new job wakes it, not the poll), it sizes claims by updates per
 * job, and claimed jobs stay in the queue, locked, until their batch commits.
 */
import { PgBoss } from 'pg-boss';
import { notifyChannelSql } from 'pg-boss/dist/plans.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createBoss, ensureQueues, UPDATES_QUEUE } from '../../src/queue/boss.js';
import { Claimer, claimLimit, notifyChannel, type QueuedJob } from '../../src/queue/claimer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/daemon.js';
import { claimableJobs } from '../helpers/queue.js';

describe('claimer', () => {
  let db: TestDatabase;
  let boss: PgBoss;

  beforeAll(async () => {
    db = await createTestDatabase('claimer');
    boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 6, logger: createLogger('silent'), worker: true });
    await boss.start();
    await ensureQueues(boss);
  });
  afterAll(async () => {
    await boss?.stop({ graceful: false });
    await db?.drop();
  });

  it('computes the notify channel pg-boss itself uses', async () => {
    for (const schema of ['pgboss', 'boss_2', '"pgboss"', 'Mixed']) {
      const { rows } = await db.pool.query(`select ${notifyChannelSql(schema)} as channel`);
      expect(notifyChannel(schema)).toBe(rows[0].channel);
    }
  });

  it('claims at most about 40 × BATCH_SIZE updates: every job when jobs are small, fewer when they carry many', () => {
    expect(claimLimit(500, 1)).toBe(500);
    expect(claimLimit(500, 40)).toBe(500);
    expect(claimLimit(500, 100)).toBe(200);
    expect(claimLimit(500, 1_000)).toBe(20);
    expect(claimLimit(20, 1_000)).toBe(1);
    expect(claimLimit(20, 60)).toBe(13);
  });

  it('never claims more jobs than its limit, with two loops claiming side by side', async () => {
    // 600 jobs of 100 updates: the first claim takes at most 20 (the estimate starts at 1,000
    // updates a job; its write is recorded in the same tick as the estimate moves), every later
    // one at most 200.
    // Statistics from when the queue was empty, as after a drain and a vacuum: then the planner
    // thinks the job table tiny, the plan a joined subquery of the claim would get.
    await db.pool.query('vacuum analyze pgboss.job');
    const start = Date.now() - 3_600_000;
    const jobs = Array.from({ length: 600 }, (_, j) => ({
      updates: Array.from({ length: 100 }, (_, i) => ({ mirror: `limit_${i}`, status: 'running', observedAt: new Date(start + j * 100 + i).toISOString(), seq: 0 })),
    }));
    await boss.insert(UPDATES_QUEUE, jobs.map((data) => ({ data })));
    const sizes: number[] = [];
    const claimer = new Claimer({
      boss, bossSchema: 'pgboss', batchSize: 500, concurrency: 2, logger: createLogger('silent'),
      write: async (claimed) => {
        sizes.push(claimed.length);
        await new Promise((resolve) => setTimeout(resolve, 5));
      },
    });
    await claimer.start();
    try {
      await waitFor('every job claimed', () => sizes.reduce((a, b) => a + b, 0) >= 600, 20_000, 10);
    } finally {
      await claimer.stop();
    }
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(600);
    expect(sizes[0]).toBeLessThanOrEqual(20);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(200);
  });

  it('is woken by a new job at once rather than by its poll, and holds its jobs locked until the batch commits', async () => {
    const written: QueuedJob[][] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    const claimer = new Claimer({
      boss, bossSchema: 'pgboss', batchSize: 10, concurrency: 1, logger: createLogger('silent'),
      // A poll this long would fail the waits below: only the notification can wake the loop in time.
      pollIntervalMs: 600_000,
      write: async (jobs) => {
        written.push(jobs);
        await gate;
      },
    });
    await claimer.start();
    try {
      // Let the loop's first (empty) claim pass, so that it sleeps on its 10-minute poll.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(written).toHaveLength(0);
      await boss.send(UPDATES_QUEUE, { mirror: 'woken', status: 'running', observedAt: new Date().toISOString(), seq: 1 });
      await waitFor('the claimer to be woken by the new job', () => written.length === 1, 10_000, 10);
      expect(written[0]?.map((job) => job.data)).toEqual([expect.objectContaining({ mirror: 'woken' })]);

      // While the batch is in hand its job is still there (a crash would leave it queued), but no
      // one else can take it.
      expect(await claimableJobs(db.pool)).toEqual({ present: 1, free: 0 });
      release();
      await waitFor('the claimed job to be gone with the commit', async () =>
        (await db.pool.query(`select count(*)::int as n from pgboss.job where name = $1`, [UPDATES_QUEUE])).rows[0].n === 0);
    } finally {
      release();
      await claimer.stop();
    }
  });
});
