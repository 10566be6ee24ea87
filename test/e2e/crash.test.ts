/**
 * SIGKILL mid-drain, several times, then restart: the final catalog equals the model, no journal
 * row exists twice, nothing is left in the queue, and the jobs the dead daemon held came back
 * at once: a batch claims its jobs by deleting them in its own transaction (src/queue/claimer.ts),
 * which the server rolls back when the daemon's connection dies.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { expectCatalogMatchesModel, generateUpdates, packJobs, pendingJobs, rng, shuffle } from '../helpers/model.js';
import { claimableJobs, insertJobs, startProducer } from '../helpers/queue.js';

const ENV = { MIRRORSTATE_BATCH_SIZE: '25', MIRRORSTATE_CONCURRENCY: '2' };

describe('a daemon killed with SIGKILL mid-drain', () => {
  let db: TestDatabase;
  let producer: PgBoss;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('crash');
    // The first daemon migrates and creates the queues; the stream goes in while it is stopped.
    const first = await startDaemon({ databaseUrl: db.url, env: ENV });
    expect(await first.stop()).toBe(0);
    producer = await startProducer(db.url);
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop('SIGKILL');
    await producer?.stop({ graceful: false });
    await db?.drop();
  });

  const journalRows = async () => Number((await db.pool.query('select count(*) from mirrorstate.journal')).rows[0].count);
  /** Jobs held by an open batch transaction: there, but not lockable. */
  const heldJobs = async () => {
    const { present, free } = await claimableJobs(db.pool);
    return present - free;
  };

  it('loses nothing and duplicates nothing, and the held jobs come back at once', async () => {
    const random = rng(7);
    const updates = generateUpdates(7, 50, 60);
    const stream = shuffle([...updates, ...updates.filter(() => random() < 0.25)], random);
    await insertJobs(producer, packJobs(stream, random, 5));
    const total = new Set(updates.map((u) => `${u.mirror}|${u.observedAt}`)).size;

    let killedHoldingJobs = 0;
    for (const fraction of [0.15, 0.4, 0.7]) {
      const daemon = await startDaemon({ databaseUrl: db.url, env: ENV });
      daemons.push(daemon);
      await waitFor(`journal past ${fraction * 100}%`, async () => (await journalRows()) >= fraction * total, 60_000, 5);
      const held = await heldJobs();
      if (held > 0) killedHoldingJobs++;
      expect(await daemon.stop('SIGKILL')).toBe('SIGKILL');
      // Measure how long the dead daemon's claims take to come back: no heartbeat to wait out.
      const killedAt = Date.now();
      if (held > 0) {
        await waitFor('the killed daemon’s jobs to be claimable', async () => (await heldJobs()) === 0, 5_000, 20);
        console.log(`claims of the killed daemon (${held} jobs) came back after ${Date.now() - killedAt} ms`);
      }
    }
    expect(killedHoldingJobs).toBeGreaterThan(0);

    const last = await startDaemon({ databaseUrl: db.url, env: ENV });
    daemons.push(last);
    await waitFor('the queue to drain', async () => (await pendingJobs(db.pool)) === 0, 90_000, 100);
    await expectCatalogMatchesModel(db.pool, updates);
    const { rows } = await db.pool.query(
      `select count(*)::int as n from pgboss.job where name = 'mirrorstate-updates'`,
    );
    expect(rows[0].n).toBe(0);
    expect(await last.stop()).toBe(0);
  });
});
