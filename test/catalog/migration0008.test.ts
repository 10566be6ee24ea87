/**
 * Migration 0008 (tables, the slot sample's time and WAL status, the byte-order index) on a catalog
 * the previous migrations made and filled, with a backlog of updates still waiting in the queue, some
 * of them already carrying the new fields (a producer upgraded before the daemon): the daemon of this
 * build migrates at start, keeps every old row as it was, and drains the backlog into the new table.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadMigrations } from '../../src/catalog/migrate.js';
import { ensureQueues } from '../../src/queue/boss.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { migrateBefore, writeAsPreviousBuild } from '../helpers/previousCatalog.js';
import { insertJobs, startProducer } from '../helpers/queue.js';
import { invariantViolations, SCHEMA } from '../reads/support.js';

let db: TestDatabase;
let producer: PgBoss;
let daemon: DaemonProcess | undefined;
const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();

beforeAll(async () => {
  db = await createTestDatabase('migration0008');
  await migrateBefore(db.pool, SCHEMA, 8);
  await writeAsPreviousBuild(db.pool, SCHEMA, [
    { mirror: 'old', status: 'setup', observedAt: at(300), rowsSynced: 0 },
    { mirror: 'old', status: 'running', observedAt: at(200), rowsSynced: 500 },
    { mirror: 'quiet', status: 'paused', observedAt: at(250) },
  ]);
  producer = await startProducer(db.url);
  await ensureQueues(producer);
  await insertJobs(producer, [
    { mirror: 'old', status: 'snapshot', observedAt: at(100), slotLagBytes: 1, slotLagSampledAt: at(101), slotWalStatus: 'extended',
      tables: [{ table: 'public.a', snapshot: { partitions: 2, partitionsSynced: 1 } }] },
    { updates: [{ mirror: 'new', status: 'running', observedAt: at(50), tables: [] }, { mirror: 'old', status: 'running', observedAt: at(40) }] },
  ]);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await producer?.stop({ graceful: false });
  await db?.drop();
});

it('migrates at start, keeps the old rows, and drains the waiting backlog into the new columns and table', async () => {
  const { rows: [quietBefore] } = await db.pool.query(`select * from ${SCHEMA}.mirrors where mirror = 'quiet'`);
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  await waitFor('the backlog applied', async () =>
    (await db.pool.query(`select 1 from ${SCHEMA}.mirrors where mirror = 'old' and status = 'running' and transitions_total = 4`)).rows.length === 1);
  const { rows: [version] } = await db.pool.query<{ version: number }>(`select max(version) as version from ${SCHEMA}.schema_migrations`);
  expect(version?.version).toBe(loadMigrations().at(-1)?.version);

  // The mirror nothing new was said about is exactly as the previous build left it.
  const { rows: [quietAfter] } = await db.pool.query(`select * from ${SCHEMA}.mirrors where mirror = 'quiet'`);
  expect(quietAfter).toEqual({ ...quietBefore, slot_lag_sampled_at: null, slot_wal_status: null, tables_reported: false });

  const { rows: [old] } = await db.pool.query(
    `select rows_synced, slot_lag_bytes, slot_wal_status, slot_lag_sampled_at is not null as sampled, journal_length from ${SCHEMA}.mirrors where mirror = 'old'`);
  expect(old).toEqual({ rows_synced: 500, slot_lag_bytes: 1, slot_wal_status: 'extended', sampled: true, journal_length: 4 });
  const { rows: tables } = await db.pool.query(`select mirror, table_name, snapshot_partitions_synced from ${SCHEMA}.mirror_tables order by 1, 2`);
  expect(tables).toEqual([{ mirror: 'old', table_name: 'public.a', snapshot_partitions_synced: 1 }]);
  const { rows: transitions } = await db.pool.query(`select to_status from ${SCHEMA}.transitions where mirror = 'old' order by at`);
  expect(transitions.map((t) => t.to_status)).toEqual(['setup', 'running', 'snapshot', 'running']);
  expect(await invariantViolations(db.pool)).toEqual([]);

  const answer = (await (await fetch(`${daemon.url}/api/v1/mirrors/old`)).json()) as { tables: { table: string }[] };
  expect(answer.tables.map((t) => t.table)).toEqual(['public.a']);
});
