/**
 * The queue in a database of its own (MIRRORSTATE_QUEUE_DATABASE_URL): the catalog commits first
 * and jobs complete after, so a crash between the two redelivers jobs. The idempotency key must make
 * the catalog writes of a redelivery no-ops, and dead letters must not be duplicated either.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { expectCatalogMatchesModel, generateUpdates, packJobs, pendingJobs, rng, shuffle } from '../helpers/model.js';
import { insertJobs, startProducer } from '../helpers/queue.js';

describe('queue and catalog in separate databases', () => {
  let catalog: TestDatabase;
  let queue: TestDatabase;
  let daemon: DaemonProcess;
  let producer: PgBoss;

  beforeAll(async () => {
    catalog = await createTestDatabase('sep_catalog');
    queue = await createTestDatabase('sep_queue');
    daemon = await startDaemon({
      databaseUrl: catalog.url,
      env: { MIRRORSTATE_QUEUE_DATABASE_URL: queue.url, MIRRORSTATE_BATCH_SIZE: '30', MIRRORSTATE_CONCURRENCY: '2' },
    });
    producer = await startProducer(queue.url);
  });
  afterAll(async () => {
    await producer?.stop({ graceful: false });
    await daemon?.stop();
    await catalog?.drop();
    await queue?.drop();
  });

  it('writes the catalog in one database from the queue in the other', async () => {
    expect(daemon.output()).toMatch(/"claim":"pg-boss worker"/);
    const { rows } = await catalog.pool.query(`select count(*)::int as n from pg_namespace where nspname = 'pgboss'`);
    expect(rows[0].n).toBe(0); // no queue tables in the catalog database
    const random = rng(5);
    const updates = generateUpdates(5, 20, 20);
    await insertJobs(producer, packJobs(shuffle([...updates, ...updates.filter(() => random() < 0.3)], random), random));
    await waitFor('the queue to drain', async () => (await pendingJobs(queue.pool)) === 0);
    await expectCatalogMatchesModel(catalog.pool, updates);
  });

  it('a redelivered job changes nothing and dead-letters nothing twice', async () => {
    const at = new Date(Date.now() - 60_000).toISOString();
    const data = { updates: [{ mirror: 'redelivered', status: 'running', observedAt: at }, { mirror: 'redelivered', status: 'nope', observedAt: at }] };
    const [id] = (await producer.insert('mirrorstate-updates', [{ data }], { returnId: true })) as string[];
    // A written job is settled by deleting it from the queue (after the catalog commit, here).
    const settled = async () => (await queue.pool.query(`select 1 from pgboss.job where id = $1`, [id])).rowCount === 0;
    await waitFor('the job to be settled', settled);
    const snapshot = async () => ({
      mirror: (await catalog.pool.query(`select status, journal_length, transitions_total, updated_at from mirrorstate.mirrors where mirror = 'redelivered'`)).rows,
      journal: (await catalog.pool.query(`select count(*)::int as n from mirrorstate.journal where mirror = 'redelivered'`)).rows[0].n,
      deadLetters: (await queue.pool.query(`select count(*)::int as n from pgboss.job where name = 'mirrorstate-updates-dlq' and data->'job'->>'id' = $1`, [id])).rows[0].n,
    });
    const before = await snapshot();
    expect(before).toMatchObject({ journal: 1, deadLetters: 1 });
    // What a crash between the catalog commit and the settle leaves: the same job, to do again.
    await producer.insert('mirrorstate-updates', [{ id, data }]);
    await waitFor('the redelivered job to be settled', settled);
    expect(await snapshot()).toEqual(before);
  });
});
