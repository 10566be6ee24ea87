/**
 * Three daemons drain one queue at once, all starting (and migrating) together: the same current
 * states, journal and invariants as the model, unbroken transition chains, and no deadlock: no
 * batch failed (a failed batch rolls back, is logged at error level and its jobs are claimed
 * again, so the log is where a deadlock would show).
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { expectCatalogMatchesModel, generateUpdates, packJobs, pendingJobs, rng, shuffle } from '../helpers/model.js';
import { insertJobs, startProducer } from '../helpers/queue.js';

describe('three daemons on one queue', () => {
  let db: TestDatabase;
  let producer: PgBoss;
  let daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('three');
    // All three start on an empty database: the migrations race too.
    daemons = await Promise.all(
      [0, 1, 2].map(() => startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_BATCH_SIZE: '40', MIRRORSTATE_CONCURRENCY: '2' } })),
    );
    producer = await startProducer(db.url);
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop('SIGKILL');
    await producer?.stop({ graceful: false });
    await db?.drop();
  });

  it('gives the model’s catalog with no deadlock and no failed batch', async () => {
    const random = rng(11);
    // Few mirrors, many versions: batches of different daemons collide on the same rows.
    const updates = generateUpdates(11, 12, 150);
    const stream = shuffle([...updates, ...updates.filter(() => random() < 0.2)], random);
    await insertJobs(producer, packJobs(stream, random, 8));
    await waitFor('the queue to drain', async () => (await pendingJobs(db.pool)) === 0, 90_000, 100);
    await expectCatalogMatchesModel(db.pool, updates);

    const { rows: migrations } = await db.pool.query('select version, count(*)::int as n from mirrorstate.schema_migrations group by 1');
    expect(migrations.every((m) => m.n === 1)).toBe(true);
    const codes = await Promise.all(daemons.map((d) => d.stop()));
    expect(codes).toEqual([0, 0, 0]);
    for (const d of daemons) {
      expect(d.output()).not.toMatch(/deadlock|"level":50/);
      // Every daemon took part.
      expect(d.output()).toMatch(/consumer started/);
    }
  });
});
