/**
 * Catalog outage, seen from outside the daemon process: /metrics keeps answering with the last good
 * snapshot and catalog_up 0, /readyz says 503 with the reason, and both recover with the catalog.
 * The outage is real: the catalog database refuses connections and the daemon's are terminated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgBoss } from 'pg-boss';
import { createLogger } from '../../src/log.js';
import { publishUpdates } from '../../src/publish.js';
import { createBoss } from '../../src/queue/boss.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { admin, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { mirrorPart, sample, scrape } from './fixtures.js';

let db: TestDatabase;
let daemon: DaemonProcess;
let boss: PgBoss;

async function readyz(): Promise<{ status: number; body: { error?: string; reasons?: string[] } }> {
  const res = await fetch(`${daemon.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { error?: string; reasons?: string[] } };
}

beforeAll(async () => {
  db = await createTestDatabase('metrics_outage');
  daemon = await startDaemon({ databaseUrl: db.url });
  boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 2, logger: createLogger('silent'), worker: false });
  await boss.start();
  const now = Date.now();
  await publishUpdates(boss, [
    { mirror: 'alpha', status: 'running', observedAt: new Date(now - 2000).toISOString(), rowsSynced: 7 },
    { mirror: 'beta', status: 'failed', observedAt: new Date(now - 1000).toISOString(), error: { message: 'x', class: 'auth' } },
  ]);
  await waitFor('both mirrors on /metrics', async () => (await scrape(daemon.url)).text.includes('mirror="beta"'));
});

afterAll(async () => {
  await admin(`alter database ${db.name} with allow_connections true`).catch(() => undefined);
  await boss?.stop({ graceful: false, timeout: 1000 }).catch(() => undefined);
  await daemon?.stop();
  await db?.drop();
});

describe('catalog outage', () => {
  it('reports ready while the catalog is reachable and migrated', async () => {
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready' } });
  });

  it('says 503 with the reason while migrations are behind', async () => {
    // The newest migration taken back out of the record: the catalog is one behind the files.
    const { rows: [newest] } = await db.pool.query(
      'delete from mirrorstate.schema_migrations where version = (select max(version) from mirrorstate.schema_migrations) returning version, name',
    );
    try {
      const res = await readyz();
      expect(res.status).toBe(503);
      expect(res.body.error).toMatch(
        new RegExp(`catalog migrations behind: at ${newest.version - 1}, files reach ${newest.version}; run mirrorstate migrate`),
      );
    } finally {
      await db.pool.query('insert into mirrorstate.schema_migrations (version, name) values ($1, $2)', [newest.version, newest.name]);
    }
    expect((await readyz()).status).toBe(200);
  });

  it('keeps serving the last good snapshot with catalog_up 0, and /readyz 503, until the catalog is back', async () => {
    const good = await scrape(daemon.url);
    expect(sample(good.text, 'mirrorstate_catalog_up')).toBe('1');
    const takenAt = sample(good.text, 'mirrorstate_snapshot_timestamp_seconds');

    await boss.stop({ graceful: false, timeout: 1000 });
    // Terminating the backends breaks this pool's idle connections too; it reconnects afterwards.
    db.pool.on('error', () => undefined);
    // The daemon's open connections go too; terminate_backend's timeout waits until they are gone.
    await admin(`alter database ${db.name} with allow_connections false`);
    await admin(`select pg_terminate_backend(pid, 10000) from pg_stat_activity where datname = '${db.name}'`);
    try {
      const down = await scrape(daemon.url);
      expect(down.status).toBe(200);
      expect(sample(down.text, 'mirrorstate_catalog_up')).toBe('0');
      expect(sample(down.text, 'mirrorstate_snapshot_timestamp_seconds')).toBe(takenAt);
      expect(mirrorPart(down.text)).toBe(mirrorPart(good.text));
      expect(sample(down.text, 'peerdb_mirror_status{mirror="beta",status="failed"}')).toBe('1');

      const notReady = await readyz();
      expect(notReady.status).toBe(503);
      expect(notReady.body.error).toMatch(/catalog unreachable/);
      expect((await fetch(`${daemon.url}/healthz`)).status).toBe(200);
    } finally {
      await admin(`alter database ${db.name} with allow_connections true`);
    }

    await waitFor('catalog_up 1 after the outage', async () => sample((await scrape(daemon.url)).text, 'mirrorstate_catalog_up') === '1');
    const back = await scrape(daemon.url);
    expect(Number(sample(back.text, 'mirrorstate_snapshot_timestamp_seconds'))).toBeGreaterThan(Number(takenAt));
    await waitFor('/readyz 200 after the outage', async () => (await readyz()).status === 200);
  });
});
