/**
 * A batch that fails is counted (mirrorstate_batch_failures_total{reason="error"}), its jobs stay
 * queued, and it is written once the fault is gone. The fault: the catalog's mirrors table locked by
 * someone else, met by the daemon's lock timeout (MIRRORSTATE_DB_LOCK_TIMEOUT), so a stuck lock
 * costs failed, counted batches rather than a consumer that waits without a word.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startProducer } from '../helpers/queue.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

describe('failed batches', () => {
  let db: TestDatabase;
  let daemon: DaemonProcess;
  let producer: PgBoss;

  beforeAll(async () => {
    db = await createTestDatabase('batchfail');
    daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_DB_LOCK_TIMEOUT: '300ms' } });
    producer = await startProducer(db.url);
  });
  afterAll(async () => {
    await producer?.stop({ graceful: false });
    await daemon?.stop();
    await db?.drop();
  });

  it('counts each rolled-back batch, keeps its jobs, and writes them once the lock is gone', async () => {
    const failures = async () => seriesValue(await scrape(daemon.url), 'mirrorstate_batch_failures_total', { reason: 'error' });
    expect(await failures()).toBe(0);
    const holder = await db.pool.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table mirrorstate.mirrors in access exclusive mode');
      await producer.insert('mirrorstate-updates', [{ data: { mirror: 'blocked', status: 'running', observedAt: new Date().toISOString() } }]);
      await waitFor('two failed batches', async () => ((await failures()) ?? 0) >= 2);
      await holder.query('rollback');
    } finally {
      holder.release();
    }
    await waitFor('the update applied', async () => (await db.pool.query(`select 1 from mirrorstate.mirrors where mirror = 'blocked'`)).rowCount === 1);
    expect(seriesValue(await scrape(daemon.url), 'mirrorstate_batch_failures_total', { reason: 'refused' })).toBe(0);
    expect(daemon.output()).toMatch(/lock timeout|55P03|lock_not_available/);
  });
});
