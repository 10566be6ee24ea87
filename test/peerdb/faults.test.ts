/**
 * The PeerDB source's faults: PeerDB's catalog unreachable mid-run (the rest of the daemon goes on,
 * and the source recovers by itself), and a PeerDB too old to have flows.status (refused, naming the
 * column and the migration), by the daemon and by `mirrorstate peerdb-sync`.
 */
import { spawnSync } from 'node:child_process';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { admin, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, type PeerdbCatalog } from '../helpers/peerdb.js';
import { insertJobs, startProducer } from '../helpers/queue.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

describe('PeerDB catalog unreachable mid-run', () => {
  let catalog: PeerdbCatalog;
  let ms: TestDatabase;
  let daemon: DaemonProcess;
  let producer: PgBoss;

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('outage');
    ms = await createTestDatabase('peerdb_outage');
    await catalog.peerdb.createFlow('steady', { status: 1 });
    daemon = await startDaemon({ databaseUrl: ms.url, env: { MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s' } });
    producer = await startProducer(ms.url);
  });
  afterAll(async () => {
    await admin(`alter database ${catalog.db.name} with allow_connections true`).catch(() => undefined);
    await daemon?.stop('SIGKILL');
    await producer?.stop({ graceful: false });
    await ms?.drop();
    await catalog?.drop();
  });

  it('reports up 0, keeps draining and serving, and recovers by itself', async () => {
    const metric = async (name: string, labels = {}) => seriesValue(await scrape(daemon.url), name, labels);
    await waitFor('steady imported', async () => (await metric('peerdb_mirror_status', { mirror: 'steady', status: 'running' })) === 1);
    expect(await metric('mirrorstate_peerdb_up')).toBe(1);

    await admin(`alter database ${catalog.db.name} with allow_connections false`);
    await admin(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${catalog.db.name}' and pid <> pg_backend_pid()`);
    await waitFor('peerdb_up 0', async () => (await metric('mirrorstate_peerdb_up')) === 0);

    // Another producer's update still drains; /metrics and the API still answer.
    await insertJobs(producer, [{ mirror: 'other', status: 'running', observedAt: new Date().toISOString() }]);
    await waitFor('other drained', async () => (await metric('peerdb_mirror_status', { mirror: 'other', status: 'running' })) === 1);
    expect((await fetch(`${daemon.url}/api/v1/mirrors/steady`)).status).toBe(200);
    expect(daemon.proc.exitCode).toBeNull();
    expect(daemon.output()).toMatch(/PeerDB poll failed; retrying with backoff/);

    // PeerDB comes back (the pool of the fixture player reconnects on its own).
    await admin(`alter database ${catalog.db.name} with allow_connections true`);
    await catalog.peerdb.setStatus('steady', 2);
    await waitFor('peerdb_up 1 and the change seen', async () =>
      (await metric('mirrorstate_peerdb_up')) === 1 && (await metric('peerdb_mirror_status', { mirror: 'steady', status: 'paused' })) === 1,
    // backoff after a few failures at 1 s: 2, 4, 8 s … the next try comes within 16 s.
    30_000);
  });
});

describe('PeerDB before V44 (no flows.status)', () => {
  let catalog: PeerdbCatalog;
  let ms: TestDatabase;

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('old', { withoutStatus: true });
    ms = await createTestDatabase('peerdb_old');
  });
  afterAll(async () => {
    await ms?.drop();
    await catalog?.drop();
  });

  it('refuses to start, naming the column and the migration', async () => {
    const error = await startDaemon({ databaseUrl: ms.url, env: { MIRRORSTATE_PEERDB_URL: catalog.readerUrl } }).then(
      () => new Error('started'),
      (err: Error) => err,
    );
    expect(error.message).toMatch(/exited \(1\)/);
    expect(error.message).toContain('flows.status');
    expect(error.message).toContain('V44');
  });

  it('peerdb-sync exits non-zero with the same reason', () => {
    const r = spawnSync(process.execPath, [CLI, 'peerdb-sync'], {
      env: { ...process.env, DATABASE_URL: ms.url, MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_LOG_LEVEL: 'warn' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot read the PeerDB catalog at .*flows\.status.*V44/s);
  });
});
