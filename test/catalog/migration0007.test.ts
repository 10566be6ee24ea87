/**
 * Migration 0007 (transitions by time) on a catalog the previous migrations made and filled, with a
 * backlog of updates still waiting in the queue: the daemon of this build migrates it at start,
 * drains the backlog, and the new indexes serve the status page's timeline over history written
 * before and after the migration alike.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadMigrations } from '../../src/catalog/migrate.js';
import { ensureQueues } from '../../src/queue/boss.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { insertJobs, startProducer } from '../helpers/queue.js';
import { migrateBefore, writeAsPreviousBuild } from '../helpers/previousCatalog.js';
import { SCHEMA } from '../reads/support.js';

const HOUR = 3_600_000;
let db: TestDatabase;
let producer: PgBoss;
let daemon: DaemonProcess | undefined;
const at = (ms: number) => new Date(Date.now() - ms).toISOString();

beforeAll(async () => {
  db = await createTestDatabase('migration0007');
  await migrateBefore(db.pool, SCHEMA, 7);
  await writeAsPreviousBuild(db.pool, SCHEMA, [
    { mirror: 'old', status: 'setup', observedAt: at(50 * HOUR) },
    { mirror: 'old', status: 'running', observedAt: at(30 * HOUR) },
    { mirror: 'old', status: 'failed', observedAt: at(10 * HOUR) },
  ]);
  producer = await startProducer(db.url);
  await ensureQueues(producer);
  await insertJobs(producer, [
    { updates: [{ mirror: 'old', status: 'running', observedAt: at(5 * HOUR) }, { mirror: 'new', status: 'running', observedAt: at(2 * HOUR) }] },
    { mirror: 'old', status: 'paused', observedAt: at(HOUR) },
  ]);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await producer?.stop({ graceful: false });
  await db?.drop();
});

it('migrates at start, drains the waiting backlog, and the timeline reads old and new history', async () => {
  const indexes = async () => (await db.pool.query<{ indexname: string }>(
    `select indexname from pg_indexes where schemaname = $1 and tablename = 'transitions' order by 1`, [SCHEMA])).rows.map((r) => r.indexname);
  expect(await indexes()).toContain('transitions_at_idx');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  await waitFor('the backlog applied', async () =>
    (await db.pool.query(`select 1 from ${SCHEMA}.mirrors where mirror = 'old' and status = 'paused'`)).rows.length === 1);
  expect(await indexes()).toEqual(['transitions_at_mirror_idx', 'transitions_mirror_at_idx', 'transitions_mirror_id_idx', 'transitions_pkey']);
  const { rows } = await db.pool.query<{ version: number }>(`select max(version) as version from ${SCHEMA}.schema_migrations`);
  expect(rows[0]?.version).toBe(loadMigrations().at(-1)?.version);

  const page = await (await fetch(`${daemon.url}/mirrors/old?window=24h`)).text();
  const statuses = [...page.matchAll(/<rect class="seg[^"]*"[^>]*data-status="([^"]+)"/g)].map((m) => m[1]);
  expect(statuses).toEqual(['running', 'failed', 'running', 'paused']);
  // The timeline's window can be read from the new index alone (on a table this small the planner
  // would rather scan it, so scans are priced out for the question).
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    await client.query('set local enable_seqscan = off');
    const plan = (await client.query(`explain select to_status from ${SCHEMA}.transitions where mirror = 'old' and at > now() - interval '1 day' order by at, seq`))
      .rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toContain('transitions_mirror_at_idx');
  } finally {
    await client.query('rollback');
    client.release();
  }
});
