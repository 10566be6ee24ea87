/**
 * The randomized test of docs/message.md's rules (Ordering, Idempotency, Applying an update):
 * generated streams for many mirrors, shuffled, with duplicates and stale updates, in
 * single-update jobs and `{updates:[…]}` jobs, through the real queue to a running daemon; the
 * catalog must equal the model computed here.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { compare, expectCatalogMatchesModel, generateUpdates, packJobs, pendingJobs, rng, shuffle } from '../helpers/model.js';
import { insertJobs, startProducer } from '../helpers/queue.js';

describe.each([1, 2, 3])('a shuffled stream with duplicates (seed %i)', (seed) => {
  let db: TestDatabase;
  let daemon: DaemonProcess;
  let producer: PgBoss;

  beforeAll(async () => {
    db = await createTestDatabase(`model_${seed}`);
    daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_BATCH_SIZE: '50', MIRRORSTATE_CONCURRENCY: '3' } });
    producer = await startProducer(db.url);
  });
  afterAll(async () => {
    await producer?.stop({ graceful: false });
    await daemon?.stop();
    await db?.drop();
  });

  it('ends with every mirror at its highest version, each key journaled once, unbroken transition chains', async () => {
    const random = rng(seed);
    const updates = generateUpdates(seed, 40, 25);
    // A fifth of the stream delivered again, anywhere in the order.
    const redelivered = updates.filter(() => random() < 0.2);
    const stream = shuffle([...updates, ...redelivered], random);
    await insertJobs(producer, packJobs(stream, random));
    await waitFor('the queue to drain', async () => (await pendingJobs(db.pool)) === 0, 60_000, 100);
    await expectCatalogMatchesModel(db.pool, updates);
  });
});

describe('the stream in version order to one consumer', () => {
  let db: TestDatabase;
  let daemon: DaemonProcess;
  let producer: PgBoss;

  beforeAll(async () => {
    db = await createTestDatabase('model_ordered');
    daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_BATCH_SIZE: '20', MIRRORSTATE_CONCURRENCY: '1' } });
    producer = await startProducer(db.url);
  });
  afterAll(async () => {
    await producer?.stop({ graceful: false });
    await daemon?.stop();
    await db?.drop();
  });

  it('records exactly the transitions of the model', async () => {
    const random = rng(42);
    const updates = generateUpdates(42, 30, 20);
    const ordered = [...updates].sort(compare);
    // One job per statement: jobs inserted together share created_on, and pg-boss fetches those
    // in no particular order.
    for (const job of packJobs(ordered, random, 10)) await producer.send('mirrorstate-updates', job);
    await waitFor('the queue to drain', async () => (await pendingJobs(db.pool)) === 0, 60_000, 100);
    await expectCatalogMatchesModel(db.pool, updates, { allApplied: true });
  });
});
