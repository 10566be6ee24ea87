/**
 * Migration 0013 (transitions per day, the flapping() function) on a catalog the previous build
 * made and filled, with a backlog of updates still waiting in the queue: the daemon of this build
 * migrates at start, fills the per-day counts from the transitions already recorded (logging its
 * progress), and drains the backlog into them, adding to a day the backfill counted. The catalog
 * dashboard's fleet-wide panels then count the old and the new transitions alike.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ensureQueues } from '../../src/queue/boss.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { grafanaSql } from '../helpers/grafana.js';
import { migrateBefore, writeAsPreviousBuild } from '../helpers/previousCatalog.js';
import { insertJobs, startProducer } from '../helpers/queue.js';
import { invariantViolations, perDayViolations, SCHEMA } from '../reads/support.js';

let db: TestDatabase;
let producer: PgBoss;
let daemon: DaemonProcess | undefined;

const dashboard = JSON.parse(readFileSync(new URL('../../grafana/dashboards/mirrorstate-catalog.json', import.meta.url), 'utf8')) as
  { panels: { title: string; targets: { rawSql: string }[] }[] };
const sqlOf = (title: string) => dashboard.panels.find((p) => p.title.startsWith(title))!.targets[0]!.rawSql;

beforeAll(async () => {
  db = await createTestDatabase('migration0013');
  await migrateBefore(db.pool, SCHEMA, 13);
  await writeAsPreviousBuild(db.pool, SCHEMA, [
    { mirror: 'a', status: 'setup', observedAt: '2026-11-01T10:00:00Z' },
    { mirror: 'a', status: 'running', observedAt: '2026-11-01T11:00:00Z' },
    { mirror: 'b', status: 'running', observedAt: '2026-11-02T00:00:00Z' },
    { mirror: 'a', status: 'failed', observedAt: '2026-11-03T05:00:00Z' },
    { mirror: 'a', status: 'failed', observedAt: '2026-11-03T05:30:00Z' },
    { mirror: 'quiet', status: 'paused', observedAt: '2026-11-02T12:00:00Z' },
  ]);
  producer = await startProducer(db.url);
  await ensureQueues(producer);
  await insertJobs(producer, [
    // The same day as a's last backfilled transition, then a new day; and a mirror never seen.
    { mirror: 'a', status: 'running', observedAt: '2026-11-03T06:00:00Z' },
    { updates: [{ mirror: 'a', status: 'paused', observedAt: '2026-11-04T00:00:00Z' }, { mirror: 'c', status: 'running', observedAt: '2026-11-04T01:00:00Z' }] },
  ]);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await producer?.stop({ graceful: false });
  await db?.drop();
});

it('backfills the per-day counts at start, logging its progress, and the backlog adds to them', async () => {
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  await waitFor('the backlog applied', async () =>
    (await db.pool.query(`select 1 from ${SCHEMA}.mirrors where mirror = 'c' or (mirror = 'a' and transitions_total = 5)`)).rows.length === 2);
  expect(daemon.output()).toMatch(/"migration":"0013_transitions_per_day.sql","progress":"transitions per day: 2026-11-01 to 2026-11-03: 5 transitions \(5 so far\)"/);

  const { rows: days } = await db.pool.query(
    `select day::text, backend = 0 as backfilled, transitions::int from ${SCHEMA}.transitions_per_day order by day, backend`);
  expect(days).toEqual([
    { day: '2026-11-01', backfilled: true, transitions: 2 },
    { day: '2026-11-02', backfilled: true, transitions: 2 },
    { day: '2026-11-03', backfilled: true, transitions: 1 },
    { day: '2026-11-03', backfilled: false, transitions: 1 },
    { day: '2026-11-04', backfilled: false, transitions: 2 },
  ]);
  expect(await perDayViolations(db.pool)).toEqual([]);
  expect(await invariantViolations(db.pool)).toEqual([]);

  // The fleet-wide panels over a range whose whole days hold backfilled and new counts alike.
  const range = { from: new Date('2026-11-01T10:30:00Z'), to: new Date('2026-11-04T00:30:00Z') };
  const client = await db.pool.connect();
  try {
    await client.query(`set search_path to ${SCHEMA}`);
    const { rows: perDay } = await client.query<{ time: string; transitions: string }>(grafanaSql(sqlOf('Transitions per day'), {}, range));
    expect(perDay.map((r) => [new Date(Number(r.time) * 1000).toISOString().slice(0, 10), Number(r.transitions)]))
      .toEqual([['2026-11-01', 1], ['2026-11-02', 2], ['2026-11-03', 2], ['2026-11-04', 1]]);
    const { rows: flapping } = await client.query<{ mirror: string; transitions: string }>(grafanaSql(sqlOf('Flapping'), {}, range));
    expect(flapping.map((r) => [r.mirror, Number(r.transitions)])).toEqual([['a', 4], ['b', 1], ['quiet', 1]]);
  } finally {
    await client.query('reset search_path');
    client.release();
  }
});
