/**
 * A poll that publishes much publishes it in chunks (sync.ts, PUBLISH_CHUNK), each committed with
 * its memory. Shown here on the catalog's own queue: a first poll of a fleet larger than two chunks
 * publishes every mirror once; when a later chunk fails, the chunks before it stay published and
 * remembered, and the next poll (from the catalog's memory, as the poller restarts after a failure)
 * publishes exactly the rest: nothing lost, nothing twice.
 */
import pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { createBoss, ensureQueues, UPDATES_QUEUE } from '../../src/queue/boss.js';
import { type Leadership, tryLead } from '../../src/source/peerdb/leader.js';
import { connectPeerdb } from '../../src/source/peerdb/poller.js';
import { PUBLISH_CHUNK, type SyncContext, syncOnce } from '../../src/source/peerdb/sync.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, type PeerdbCatalog } from '../helpers/peerdb.js';

const log = createLogger('silent');
const FLOWS = 2 * PUBLISH_CHUNK + 100;

describe('publishing in chunks', () => {
  let catalog: PeerdbCatalog;
  let db: TestDatabase;
  let pool: pg.Pool;
  let boss: PgBoss;
  let leadership: Leadership;
  let peerdb: Awaited<ReturnType<typeof connectPeerdb>>;

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('chunks');
    await catalog.db.pool.query(`insert into peers (name, type, options) values ('pg_source', 3, '\\x00'), ('ch_dest', 8, '\\x00')`);
    await catalog.db.pool.query(
      `insert into flows (name, source_peer, destination_peer, workflow_id, query_string, status)
       select 'm_' || lpad(i::text, 5, '0'), 1, 2, 'wf_' || i, 'select 1', 3 from generate_series(1, ${FLOWS}) i`,
    );
    db = await createTestDatabase('chunks');
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 2, logger: log, worker: false });
    await boss.start();
    await migrate(pool, 'mirrorstate', log);
    await ensureQueues(boss);
    leadership = (await tryLead(db.url, 'mirrorstate', 'chunks-test', log))!;
    peerdb = await connectPeerdb(catalog.readerUrl, log);
  });
  afterAll(async () => {
    await peerdb?.client.end();
    await leadership?.release();
    await boss?.stop({ graceful: false, timeout: 1000 });
    await pool?.end();
    await db?.drop();
    await catalog?.drop();
  });

  /** Per mirror, how many updates the queue holds for it. */
  async function queued(): Promise<Map<string, number>> {
    const { rows } = await pool.query<{ mirror: string; n: number }>(
      `select u->>'mirror' as mirror, count(*)::int as n
         from pgboss.job j, jsonb_array_elements(case when j.data ? 'updates' then j.data->'updates' else jsonb_build_array(j.data) end) u
        where j.name = $1 group by 1`,
      [UPDATES_QUEUE],
    );
    return new Map(rows.map((r) => [r.mirror, r.n]));
  }
  const remembered = async () => (await pool.query<{ n: number }>(`select count(*)::int as n from mirrorstate.peerdb_published`)).rows[0]!.n;
  const context = (b: PgBoss): SyncContext => ({
    peerdb: peerdb.client, shape: peerdb.shape, catalog: leadership.client, schema: 'mirrorstate', boss: b, queueSharesCatalog: true, tails: null, memory: null,
  });

  it('a failed chunk leaves the chunks before it published and remembered; the next poll publishes exactly the rest', async () => {
    // The same pg-boss, whose second insert fails (as a lost connection would fail it).
    let inserts = 0;
    const failing = new Proxy(boss, {
      get(target, key, receiver) {
        if (key !== 'insert') return Reflect.get(target, key, receiver);
        return (...args: Parameters<PgBoss['insert']>) => {
          if (++inserts === 2) throw new Error('the connection went away');
          return target.insert(...args);
        };
      },
    });
    await expect(syncOnce(context(failing))).rejects.toThrow('the connection went away');
    expect((await queued()).size).toBe(PUBLISH_CHUNK);
    expect(await remembered()).toBe(PUBLISH_CHUNK);

    const summary = await syncOnce(context(boss));
    expect(summary.published).toBe(FLOWS - PUBLISH_CHUNK);
    const counts = await queued();
    expect(counts.size).toBe(FLOWS);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(await remembered()).toBe(FLOWS);
    // Each chunk its own jobs: the daemon can write the first while the next is queued.
    const { rows: jobs } = await pool.query<{ n: number }>(`select count(*)::int as n from pgboss.job where name = $1`, [UPDATES_QUEUE]);
    expect(jobs[0]!.n).toBe(Math.ceil(FLOWS / PUBLISH_CHUNK));

    expect((await syncOnce({ ...context(boss), tails: summary.tails, memory: summary.memory })).published).toBe(0);
  });
});
