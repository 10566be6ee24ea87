/**
 * The PeerDB source end to end: a database shaped like PeerDB's catalog, read by a SELECT-only role,
 * PeerDB played by the test, and the daemon as a process, seen through /metrics and the catalog.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, objectsOf, type PeerdbCatalog } from '../helpers/peerdb.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const FLEET = ['alpha', 'beta', 'gamma', 'delta', 'billing', 'shipping'];
const STATUS = { running: 1, paused: 2, pausing: 3, setup: 4, snapshot: 5, failed: 10 } as const;

describe('PeerDB source', () => {
  let catalog: PeerdbCatalog;
  let ms: TestDatabase;
  let daemon: DaemonProcess;
  let objectsBefore: string[];
  const start = () =>
    startDaemon({
      databaseUrl: ms.url,
      env: { MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s', MIRRORSTATE_LOG_LEVEL: 'debug' },
    });
  const metrics = () => scrape(daemon.url);
  const statusOf = async (mirror: string): Promise<string | undefined> => {
    const text = await metrics();
    const line = text.split('\n').find((l) => l.startsWith(`peerdb_mirror_status{mirror="${mirror}",`) && l.endsWith(' 1'));
    return line ? /status="([a-z]+)"/.exec(line)?.[1] : undefined;
  };

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('source');
    ms = await createTestDatabase('peerdb_source');
    const p = catalog.peerdb;
    for (const name of FLEET) await p.createFlow(name, { status: STATUS.running });
    await p.createFlow('reports', { query: 'select * from reports where id between {{.start}} and {{.end}}', destination: 'bq_dest' });
    await p.createFlow('walker');
    // orders: CDC counts 100 + 50, one finished snapshot partition (1000) and one unfinished (500,
    // not counted), a batch pending for 120 s, two slot samples (newest 7 MiB).
    await p.createFlow('orders', { status: STATUS.running });
    await p.startBatch('orders', 1, 100, 300);
    await p.endBatch('orders', 1, 'public.t1', 100);
    await p.startBatch('orders', 2, 50, 200);
    await p.endBatch('orders', 2, 'public.t2', 50);
    await p.partition('orders', 'clone_orders_public_t1_r1', 1000, true);
    await p.partition('orders', 'clone_orders_public_t2_r1', 500, false);
    await p.startBatch('orders', 3, 10, 120);
    await p.slotSample('orders', 5);
    await p.slotSample('orders', 7);
    objectsBefore = await objectsOf(catalog.db.pool);
    daemon = await start();
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await ms?.drop();
    await catalog?.drop();
  });

  it('imports the whole fleet on the first poll', async () => {
    await waitFor('every mirror on /metrics', async () => (await Promise.all(['walker', 'reports', 'orders', ...FLEET].map(statusOf))).every(Boolean));
    const text = await metrics();
    expect(await statusOf('walker')).toBe('setup');
    expect(await statusOf('alpha')).toBe('running');
    expect(text).toContain('peerdb_mirror_info{mirror="reports",flow_type="qrep",source="pg_source",destination="bq_dest",workflow_id="reports-qrepflow-');
    expect(text).toContain('peerdb_mirror_info{mirror="walker",flow_type="cdc",source="pg_source",destination="ch_dest",workflow_id="walker-peerflow"} 1');
    expect(seriesValue(text, 'mirrorstate_peerdb_leader')).toBe(1);
    expect(seriesValue(text, 'mirrorstate_peerdb_up')).toBe(1);
    expect(seriesValue(text, 'mirrorstate_peerdb_published_total')).toBe(FLEET.length + 3);
  });

  it('maps rows synced, lag and slot lag', async () => {
    const text = await metrics();
    // 100 + 50 from the CDC counts, 1000 from the finished partition; the unfinished 500 is not in.
    expect(seriesValue(text, 'peerdb_mirror_rows_synced_total', { mirror: 'orders' })).toBe(1150);
    const lag = seriesValue(text, 'peerdb_mirror_lag_seconds', { mirror: 'orders' })!;
    expect(lag).toBeGreaterThanOrEqual(120);
    expect(lag).toBeLessThan(180);
    expect(seriesValue(text, 'peerdb_mirror_slot_lag_bytes', { mirror: 'orders' })).toBe(7 * 1_048_576);
    expect(seriesValue(text, 'peerdb_mirror_lag_seconds', { mirror: 'alpha' })).toBe(0);
    expect(seriesValue(text, 'peerdb_mirror_lag_seconds', { mirror: 'reports' })).toBeUndefined();
  });

  it('walks a CDC mirror through its statuses, each on /metrics and all in transitions', async () => {
    const walk = ['snapshot', 'running', 'pausing', 'paused', 'running', 'failed'] as const;
    for (const status of walk) {
      await catalog.peerdb.setStatus('walker', STATUS[status]);
      await waitFor(`walker ${status} on /metrics`, async () => (await statusOf('walker')) === status);
    }
    const { rows } = await ms.pool.query(`select from_status, to_status from mirrorstate.transitions where mirror = 'walker' order by id`);
    expect(rows.map((r) => `${r.from_status ?? '-'}>${r.to_status}`)).toEqual([
      '->setup', 'setup>snapshot', 'snapshot>running', 'running>pausing', 'pausing>paused', 'paused>running', 'running>failed',
    ]);
  });

  it('raises an error-type row of a snapshot child, not a warn-type row, and clears it after a good sync', async () => {
    await catalog.peerdb.log('alpha', 'warn', 'slow destination: 10s per batch');
    await catalog.peerdb.log('clone_orders_public_t1_r1', 'error', 'dial tcp 10.0.0.7:5432: connect: connection refused');
    await waitFor('orders error on /metrics', async () => seriesValue(await metrics(), 'peerdb_mirror_error', { mirror: 'orders', class: 'connection' }) === 1);
    expect(seriesValue(await metrics(), 'peerdb_mirror_error', { mirror: 'alpha' })).toBeUndefined();
    const { rows } = await ms.pool.query(`select error_class, error_message from mirrorstate.mirrors where mirror = 'orders'`);
    expect(rows[0]).toEqual({ error_class: 'connection', error_message: 'dial tcp 10.0.0.7:5432: connect: connection refused' });
    // PeerDB recovers: the pending batch normalizes, so the error is older than the last sync.
    await catalog.peerdb.endBatch('orders', 3, 'public.t1', 10);
    await waitFor('orders error cleared', async () => seriesValue(await metrics(), 'peerdb_mirror_error', { mirror: 'orders' }) === undefined);
    expect(seriesValue(await metrics(), 'peerdb_mirror_lag_seconds', { mirror: 'orders' })).toBe(0);
  });

  it('publishes nothing while nothing changes', async () => {
    const polls = async () => seriesValue(await metrics(), 'mirrorstate_peerdb_poll_duration_seconds_count') ?? 0;
    const jobs = async () => (await ms.pool.query(`select count(*)::int as n from pgboss.job where name = 'mirrorstate-updates'`)).rows[0].n as number;
    // Let the last change's publish land first.
    const settledAt = await polls();
    await waitFor('a poll after the last change', async () => (await polls()) >= settledAt + 1);
    const published = seriesValue(await metrics(), 'mirrorstate_peerdb_published_total');
    const jobsBefore = await jobs();
    const from = await polls();
    await waitFor('three more polls', async () => (await polls()) >= from + 3);
    expect(seriesValue(await metrics(), 'mirrorstate_peerdb_published_total')).toBe(published);
    expect(await jobs()).toBe(jobsBefore);
  });

  it('skips and counts a status outside 0–11 and a name the contract refuses; the rest go on', async () => {
    await catalog.peerdb.createFlow('weird', { status: 12 });
    await catalog.peerdb.createFlow('bad\u0007name', { status: 1 });
    await catalog.peerdb.createFlow('newcomer', { status: 1 });
    await waitFor('newcomer on /metrics', async () => (await statusOf('newcomer')) === 'running');
    const text = await metrics();
    expect(seriesValue(text, 'mirrorstate_peerdb_skipped_total', { reason: 'status' })).toBeGreaterThanOrEqual(1);
    expect(seriesValue(text, 'mirrorstate_peerdb_skipped_total', { reason: 'name' })).toBeGreaterThanOrEqual(1);
    expect(text).not.toContain('mirror="weird"');
    expect(daemon.output()).toMatch(/"mirror":"weird","reason":"status"/);
    const { rows } = await ms.pool.query(`select count(*)::int as n from mirrorstate.mirrors where mirror in ('weird', 'bad\u0007name')`);
    expect(rows[0].n).toBe(0);
  });

  it('publishes a drop while it runs', async () => {
    await catalog.peerdb.drop('billing');
    await waitFor('billing gone from /metrics', async () => (await statusOf('billing')) === undefined);
    const { rows } = await ms.pool.query(`select status, dropped_at is not null as dropped from mirrorstate.mirrors where mirror = 'billing'`);
    expect(rows[0]).toEqual({ status: 'terminated', dropped: true });
  });

  it('publishes a drop made while it was down, and republishes nothing else after a restart', async () => {
    expect(await daemon.stop()).toBe(0);
    await catalog.peerdb.drop('shipping');
    daemon = await start();
    await waitFor('shipping gone from /metrics', async () => (await statusOf('shipping')) === undefined && (await statusOf('alpha')) === 'running');
    const { rows } = await ms.pool.query(`select status, dropped_at is not null as dropped from mirrorstate.mirrors where mirror = 'shipping'`);
    expect(rows[0]).toEqual({ status: 'terminated', dropped: true });
    const polls = seriesValue(await metrics(), 'mirrorstate_peerdb_poll_duration_seconds_count')!;
    await waitFor('two more polls', async () => (seriesValue(await metrics(), 'mirrorstate_peerdb_poll_duration_seconds_count') ?? 0) >= polls + 2);
    expect(seriesValue(await metrics(), 'mirrorstate_peerdb_published_total')).toBe(1);
    // The whole life of billing: one drop, not two.
    const { rows: drops } = await ms.pool.query(`select count(*)::int as n from mirrorstate.journal where mirror = 'billing' and status = 'terminated'`);
    expect(drops[0].n).toBe(1);
  });

  it('left PeerDB’s database exactly as it was, and its role can only read', async () => {
    // The fixture's own objects (flows rows etc. are data, not objects) are all that exist.
    expect(await objectsOf(catalog.db.pool)).toEqual(objectsBefore);
    const reader = new pg.Client({ connectionString: catalog.readerUrl });
    await reader.connect();
    try {
      await expect(reader.query('create temp table t (i int)')).rejects.toMatchObject({ code: '42501' });
      await expect(reader.query('create table public.t (i int)')).rejects.toMatchObject({ code: '42501' });
      await expect(reader.query(`update flows set status = 1`)).rejects.toMatchObject({ code: '42501' });
      const { rows } = await reader.query(`select count(*)::int as n from flows`);
      expect(rows[0].n).toBeGreaterThan(0);
    } finally {
      await reader.end();
    }
    // The daemon connected as that role.
    const { rows } = await catalog.db.pool.query(`select usename from pg_stat_activity where application_name = 'mirrorstate-peerdb' and datname = current_database()`);
    expect(rows.map((r) => r.usename)).toEqual([catalog.role]);
  });
});
