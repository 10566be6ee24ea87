/**
 * Two daemons on one catalog with the PeerDB source on: exactly one polls; SIGKILL it and the
 * other takes over within two poll intervals, publishing from where the first left off.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, type PeerdbCatalog } from '../helpers/peerdb.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const INTERVAL_MS = 2000;

describe('PeerDB source with two replicas', () => {
  let catalog: PeerdbCatalog;
  let ms: TestDatabase;
  let daemons: DaemonProcess[] = [];
  const gauge = async (d: DaemonProcess, name: string) => seriesValue(await scrape(d.url), name) ?? NaN;

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('leader');
    ms = await createTestDatabase('peerdb_leader');
    for (const name of ['one', 'two', 'three']) await catalog.peerdb.createFlow(name, { status: 1 });
    const env = { MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: `${INTERVAL_MS / 1000}s` };
    daemons = await Promise.all([0, 1].map(() => startDaemon({ databaseUrl: ms.url, env })));
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop('SIGKILL');
    await ms?.drop();
    await catalog?.drop();
  });

  it('has exactly one poller, and the other takes over within two intervals of a SIGKILL', async () => {
    await waitFor('a leader', async () => (await Promise.all(daemons.map((d) => gauge(d, 'mirrorstate_peerdb_leader')))).includes(1));
    const leaders = await Promise.all(daemons.map((d) => gauge(d, 'mirrorstate_peerdb_leader')));
    expect(leaders.sort()).toEqual([0, 1]);
    const leader = daemons[(await gauge(daemons[0]!, 'mirrorstate_peerdb_leader')) === 1 ? 0 : 1]!;
    const follower = daemons.find((d) => d !== leader)!;
    // The follower never polled; the leader published the fleet once.
    await waitFor('the fleet imported', async () => (await gauge(leader, 'mirrorstate_peerdb_published_total')) === 3);
    await waitFor('a few more leader polls', async () => (await gauge(leader, 'mirrorstate_peerdb_poll_duration_seconds_count')) >= 3);
    expect(await gauge(follower, 'mirrorstate_peerdb_poll_duration_seconds_count')).toBe(0);
    expect(await gauge(follower, 'mirrorstate_peerdb_published_total')).toBe(0);

    await leader.stop('SIGKILL');
    const killedAt = Date.now();
    await waitFor('the follower leading', async () => (await gauge(follower, 'mirrorstate_peerdb_leader')) === 1, 4 * INTERVAL_MS, 20);
    const takeoverMs = Date.now() - killedAt;
    // Two intervals, plus what one scrape may take on a busy machine.
    expect(takeoverMs).toBeLessThan(2 * INTERVAL_MS + 500);

    // It carries on from the catalog's memory: no republished fleet, and the next change arrives.
    await catalog.peerdb.setStatus('two', 2);
    await waitFor('two paused', async () => (await scrape(follower.url)).includes('peerdb_mirror_status{mirror="two",status="paused"} 1'));
    expect(await gauge(follower, 'mirrorstate_peerdb_published_total')).toBe(1);
    const { rows } = await ms.pool.query(`select mirror, count(*)::int as n from mirrorstate.journal group by 1 order by 1`);
    expect(rows).toEqual([{ mirror: 'one', n: 1 }, { mirror: 'three', n: 1 }, { mirror: 'two', n: 2 }]);
  });

  it('refuses `mirrorstate peerdb-sync` while a daemon leads: exit 3, saying why', async () => {
    // The first test killed one daemon; the other leads now.
    const alive = daemons.filter((d) => d.proc.exitCode === null && d.proc.signalCode === null);
    expect(alive).toHaveLength(1);
    expect(await gauge(alive[0]!, 'mirrorstate_peerdb_leader')).toBe(1);
    const r = spawnSync(process.execPath, [CLI, 'peerdb-sync'], {
      env: { ...process.env, DATABASE_URL: ms.url, MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_LOG_LEVEL: 'warn' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(3);
    expect(r.stderr).toContain('a mirrorstate daemon polls PeerDB now (it holds the leader lock); nothing done');
    expect(r.stdout).toBe('');
  });
});
