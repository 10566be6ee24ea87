/**
 * Migration 0011 (the fingerprint of the tables the PeerDB source published) on a catalog the
 * previous build wrote — its PeerDB source's memory of two mirrors, their rows, and a backlog of
 * updates still waiting in the queue: this build migrates at start, drains the backlog, publishes
 * the CDC mirror's tables once (the previous build never published them) and republishes nothing
 * for the mirror whose picture did not change.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadMigrations } from '../../src/catalog/migrate.js';
import { ensureQueues } from '../../src/queue/boss.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, type PeerdbCatalog } from '../helpers/peerdb.js';
import { migrateBefore, writeAsPreviousBuild } from '../helpers/previousCatalog.js';
import { insertJobs, startProducer } from '../helpers/queue.js';
import { invariantViolations, SCHEMA } from '../reads/support.js';

let peerdb: PeerdbCatalog;
let db: TestDatabase;
let producer: PgBoss;
let daemon: DaemonProcess | undefined;
const hourAgo = new Date(Date.now() - 3_600_000).toISOString();

beforeAll(async () => {
  peerdb = await createPeerdbCatalog('m0011');
  const p = peerdb.peerdb;
  await p.createFlow('cdc1', { status: 1 });
  const load = await p.planLoad('cdc1', 'public.a', 2);
  await p.startPartition(load, 0);
  await p.finishPartition(load, 0, 30);
  await p.createFlow('q1', { query: 'select * from t where id between {{.start}} and {{.end}}' });
  const { rows: [q1] } = await peerdb.db.pool.query<{ workflow_id: string }>(`select workflow_id from flows where name = 'q1'`);

  db = await createTestDatabase('migration0011');
  await migrateBefore(db.pool, SCHEMA, 11);
  // What the previous build's source wrote: the mirrors as it published them, and its memory.
  await writeAsPreviousBuild(db.pool, SCHEMA, [
    { mirror: 'cdc1', status: 'running', observedAt: hourAgo, rowsSynced: 30 },
    { mirror: 'q1', status: 'running', observedAt: hourAgo, rowsSynced: 0 },
  ]);
  await db.pool.query(
    `insert into ${SCHEMA}.peerdb_published (mirror, status, workflow_id, flow_type, source_peer, destination_peer, rows_synced, lag_seconds,
       numbers_at, observed_at, seq, dropped)
     values ('cdc1', 'running', 'cdc1-peerflow', 'cdc', 'pg_source', 'ch_dest', 30, 0, $1, $1, 0, false),
            ('q1', 'running', $2, 'qrep', 'pg_source', 'ch_dest', 0, null, $1, $1, 0, false)`,
    [hourAgo, q1!.workflow_id],
  );
  producer = await startProducer(db.url);
  await ensureQueues(producer);
  await insertJobs(producer, [{ mirror: 'waiting', status: 'running', observedAt: hourAgo, tables: [{ table: 'x' }] }]);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await producer?.stop({ graceful: false });
  await db?.drop();
  await peerdb?.drop();
});

it('migrates at start, drains the backlog, publishes the tables the previous build never did, and nothing else', async () => {
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_PEERDB_URL: peerdb.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s' } });
  await waitFor('the backlog applied', async () => (await db.pool.query(`select 1 from ${SCHEMA}.mirror_tables where mirror = 'waiting'`)).rows.length === 1);
  const { rows: [version] } = await db.pool.query<{ version: number }>(`select max(version) as version from ${SCHEMA}.schema_migrations`);
  expect(version?.version).toBe(loadMigrations().at(-1)?.version);

  await waitFor('cdc1’s tables', async () => (await db.pool.query(`select 1 from ${SCHEMA}.mirror_tables where mirror = 'cdc1'`)).rows.length === 1);
  const { rows: [table] } = await db.pool.query(
    `select table_name, snapshot_partitions, snapshot_partitions_synced, snapshot_rows_synced from ${SCHEMA}.mirror_tables where mirror = 'cdc1'`);
  expect(table).toEqual({ table_name: 'public.a', snapshot_partitions: 2, snapshot_partitions_synced: 1, snapshot_rows_synced: 30 });
  const { rows: [memory] } = await db.pool.query(`select tables_digest from ${SCHEMA}.peerdb_published where mirror = 'cdc1'`);
  expect(memory?.tables_digest).toEqual(expect.any(String));

  // Three more polls: q1, whose picture is what the previous build published, is never republished.
  const polls = async () => Number(/mirrorstate_peerdb_poll_duration_seconds_count (\d+)/.exec(await (await fetch(`${daemon!.url}/metrics`)).text())?.[1] ?? 0);
  const now = await polls();
  await waitFor('three more polls', async () => (await polls()) >= now + 3);
  const { rows: journal } = await db.pool.query(`select mirror, count(*)::int as n from ${SCHEMA}.journal group by mirror order by mirror`);
  expect(journal).toEqual([{ mirror: 'cdc1', n: 2 }, { mirror: 'q1', n: 1 }, { mirror: 'waiting', n: 1 }]);
  expect(await invariantViolations(db.pool)).toEqual([]);
});
