/**
 * The PeerDB source with the queue in a database of its own (MIRRORSTATE_QUEUE_DATABASE_URL): no
 * transaction spans the jobs and the source's memory, so sync.ts publishes first and records after.
 * The fleet must arrive once (one journal row per mirror, one job per mirror in the queue
 * database), a later change once more, and nothing be published again by idle polls.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UPDATES_QUEUE } from '../../src/queue/boss.js';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, type PeerdbCatalog } from '../helpers/peerdb.js';
import { logJobs } from '../helpers/queue.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const FLEET = ['east', 'west', 'north', 'south'];

describe('PeerDB source with a separate queue database', () => {
  let catalog: PeerdbCatalog;
  let ms: TestDatabase;
  let queue: TestDatabase;
  let daemon: DaemonProcess;

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('sepq');
    ms = await createTestDatabase('peerdb_sepq_catalog');
    queue = await createTestDatabase('peerdb_sepq_queue');
    for (const name of FLEET) await catalog.peerdb.createFlow(name, { status: 1 });
    // Migrated first, so every job the source publishes is logged from its first poll on (the
    // daemon deletes each job it has written).
    const env = { ...process.env, DATABASE_URL: ms.url, MIRRORSTATE_QUEUE_DATABASE_URL: queue.url, MIRRORSTATE_LOG_LEVEL: 'warn' };
    await promisify(execFile)(process.execPath, [CLI, 'migrate'], { env });
    await logJobs(queue.pool);
    daemon = await startDaemon({
      databaseUrl: ms.url,
      env: { MIRRORSTATE_QUEUE_DATABASE_URL: queue.url, MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s' },
    });
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await ms?.drop();
    await queue?.drop();
    await catalog?.drop();
  });

  const journal = async () =>
    (await ms.pool.query<{ mirror: string; n: number }>(`select mirror, count(*)::int as n from mirrorstate.journal group by 1 order by 1`)).rows;
  /** Updates per mirror in every job enqueued on the updates queue (a job holds one update or `{ updates }`). */
  const jobs = async () =>
    (await queue.pool.query<{ mirror: string; n: number }>(
      `select u->>'mirror' as mirror, count(*)::int as n
         from pgboss.test_job_log j, jsonb_array_elements(case when j.data ? 'updates' then j.data->'updates' else jsonb_build_array(j.data) end) u
        where j.name = $1 group by 1 order by 1`,
      [UPDATES_QUEUE],
    )).rows;

  it('imports the fleet once, publishing into the queue database', async () => {
    const { rows: inCatalog } = await ms.pool.query(`select count(*)::int as n from pg_namespace where nspname = 'pgboss'`);
    expect(inCatalog[0].n).toBe(0); // the jobs can only be in the queue database
    await waitFor('the fleet in the journal', async () => (await journal()).length === FLEET.length);
    const polls = async () => seriesValue(await scrape(daemon.url), 'mirrorstate_peerdb_poll_duration_seconds_count') ?? 0;
    const after = (await polls()) + 3;
    await waitFor('three more polls', async () => (await polls()) >= after);
    const once = [...FLEET].sort().map((mirror) => ({ mirror, n: 1 }));
    expect(await journal()).toEqual(once);
    expect(await jobs()).toEqual(once);
    const { rows: memory } = await ms.pool.query(`select mirror from mirrorstate.peerdb_published order by 1`);
    expect(memory.map((r) => r.mirror)).toEqual([...FLEET].sort());
  });

  it('publishes a change once', async () => {
    await catalog.peerdb.setStatus('west', 2);
    await waitFor('west paused', async () => (await scrape(daemon.url)).includes('peerdb_mirror_status{mirror="west",status="paused"} 1'));
    const polls = async () => seriesValue(await scrape(daemon.url), 'mirrorstate_peerdb_poll_duration_seconds_count') ?? 0;
    const after = (await polls()) + 2;
    await waitFor('two more polls', async () => (await polls()) >= after);
    expect((await jobs()).find((r) => r.mirror === 'west')?.n).toBe(2);
    expect((await journal()).find((r) => r.mirror === 'west')?.n).toBe(2);
    expect(seriesValue(await scrape(daemon.url), 'mirrorstate_peerdb_published_total')).toBe(FLEET.length + 1);
  });
});
