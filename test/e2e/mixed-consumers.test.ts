/**
 * Both ways of taking jobs drain one queue at once: a daemon that claims in its catalog transaction
 * (queue in the catalog database) beside one that goes through pg-boss's worker (told the queue is
 * elsewhere, by a different URL of the same database). This is a rolling upgrade from a build that
 * fetched through pg-boss: each skips the jobs the other holds, and the catalog equals the model,
 * with no deadlock and no failed batch.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { expectCatalogMatchesModel, generateUpdates, packJobs, pendingJobs, rng, shuffle } from '../helpers/model.js';
import { insertJobs, startProducer } from '../helpers/queue.js';

describe('a claiming daemon and a pg-boss worker daemon on one queue', () => {
  let db: TestDatabase;
  let producer: PgBoss;
  let daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('mixed');
    const env = { MIRRORSTATE_BATCH_SIZE: '30', MIRRORSTATE_CONCURRENCY: '2' };
    const first = await startDaemon({ databaseUrl: db.url, env });
    const sameDatabase = new URL(db.url);
    sameDatabase.searchParams.set('application_name', 'mirrorstate-queue');
    const second = await startDaemon({ databaseUrl: db.url, env: { ...env, MIRRORSTATE_QUEUE_DATABASE_URL: sameDatabase.toString() } });
    daemons = [first, second];
    producer = await startProducer(db.url);
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop('SIGKILL');
    await producer?.stop({ graceful: false });
    await db?.drop();
  });

  it('gives the model’s catalog, both taking part, with no deadlock and no failed batch', async () => {
    const [claiming, worker] = daemons as [DaemonProcess, DaemonProcess];
    expect(claiming.output()).toMatch(/"claim":"in the catalog transaction"/);
    expect(worker.output()).toMatch(/"claim":"pg-boss worker"/);

    const random = rng(23);
    // Few mirrors, many versions: batches of the two daemons collide on the same rows.
    const updates = generateUpdates(23, 12, 150);
    const stream = shuffle([...updates, ...updates.filter(() => random() < 0.2)], random);
    await insertJobs(producer, packJobs(stream, random, 8));
    await waitFor('the queue to drain', async () => (await pendingJobs(db.pool)) === 0, 90_000, 100);
    await expectCatalogMatchesModel(db.pool, updates);

    const written = async (daemon: DaemonProcess) => {
      const response = await fetch(`${daemon.url}/metrics`);
      const line = (await response.text()).split('\n').find((l) => l.startsWith('mirrorstate_batch_size_count'));
      return Number(line?.split(' ')[1] ?? 0);
    };
    // Each wrote batches of its own.
    expect(await written(claiming)).toBeGreaterThan(0);
    expect(await written(worker)).toBeGreaterThan(0);
    const codes = await Promise.all(daemons.map((d) => d.stop()));
    expect(codes).toEqual([0, 0]);
    for (const d of daemons) expect(d.output()).not.toMatch(/deadlock|"level":50/);
  });
});
