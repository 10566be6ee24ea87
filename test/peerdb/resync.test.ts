/**
 * A resync as PeerDB does it (drop_flow.go, flowable.go): the flows row stays with its created_at,
 * the status goes RESYNC, the mirror's stats are deleted (drop-stats), then SETUP, SNAPSHOT and
 * RUNNING with a new load; errors logged before stay in flow_errors. The daemon as a process, the
 * catalog as the SELECT-only role reads it, PeerDB's own total computed by its query.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, type PeerdbCatalog } from '../helpers/peerdb.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const STATUS = { running: 1, setup: 4, snapshot: 5, resync: 9 } as const;
const INTERVAL_MS = 1000;

/** TotalRowsSyncedByMirror, PeerDB's own query, over the whole tables. */
async function peerdbTotal(pool: pg.Pool, mirror: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `select coalesce((select sum(total_count) from peerdb_stats.cdc_table_aggregate_counts where flow_name = $1), 0)
          + coalesce((select sum(rows_synced) from peerdb_stats.qrep_partitions where parent_mirror_name = $1 and end_time is not null), 0) as n`,
    [mirror],
  );
  return Number(rows[0]!.n);
}

describe('resync', () => {
  let catalog: PeerdbCatalog;
  let ms: TestDatabase;
  let daemon: DaemonProcess;
  const start = () =>
    startDaemon({ databaseUrl: ms.url, env: { MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s', MIRRORSTATE_LOG_LEVEL: 'debug' } });
  const rows = async () => seriesValue(await scrape(daemon.url), 'peerdb_mirror_rows_synced_total', { mirror: 'orders' });
  const error = async () => seriesValue(await scrape(daemon.url), 'peerdb_mirror_error', { mirror: 'orders', class: 'connection' });
  const sql = (text: string, values: unknown[] = []) => catalog.db.pool.query(text, values);

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('resync');
    ms = await createTestDatabase('peerdb_resync');
    const p = catalog.peerdb;
    await p.createFlow('orders', { status: STATUS.running });
    await p.partition('orders', 'clone_orders_public_t1_r1', 2000, true);
    await p.startBatch('orders', 1, 120, 60);
    await p.endBatch('orders', 1, 'public.t1', 120);
    daemon = await start();
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await ms?.drop();
    await catalog?.drop();
  });

  it('rows synced equal PeerDB’s total within one interval of the drop of stats; the old error is never current after', async () => {
    await waitFor('orders at 2,120', async () => (await rows()) === 2120);
    await catalog.peerdb.log('orders', 'error', 'dial tcp 10.0.0.7:5432: connect: connection refused');
    await catalog.peerdb.setStatus('orders', 10);
    await waitFor('the error on /metrics', async () => (await error()) === 1);

    // RESYNC, and drop-stats deletes the mirror's counts and its snapshot's partitions and runs.
    await catalog.peerdb.setStatus('orders', STATUS.resync);
    await sql(`delete from peerdb_stats.cdc_table_aggregate_counts where flow_name = 'orders'`);
    await sql(`delete from peerdb_stats.qrep_partitions where parent_mirror_name = 'orders'`);
    await sql(`delete from peerdb_stats.qrep_runs where parent_mirror_name = 'orders'`);
    await sql(`delete from peerdb_stats.cdc_batches where flow_name = 'orders'`);
    const dropped = Date.now();
    expect(await peerdbTotal(catalog.db.pool, 'orders')).toBe(0);
    // Not at the 1/120 reconciliation, nor after the 30 s numbers interval: at the next poll.
    await waitFor('rows synced 0', async () => (await rows()) === 0, 10_000, 100);
    expect(Date.now() - dropped).toBeLessThan(INTERVAL_MS * 3);
    expect(await error()).toBeUndefined();

    // SETUP, SNAPSHOT with a new load, RUNNING: the old error never comes back.
    await catalog.peerdb.setStatus('orders', STATUS.setup);
    await catalog.peerdb.setStatus('orders', STATUS.snapshot);
    await catalog.peerdb.partition('orders', 'clone_orders_public_t1_r2', 300, true);
    await catalog.peerdb.setStatus('orders', STATUS.running);
    await waitFor('rows synced 300', async () => (await rows()) === 300);
    expect(await peerdbTotal(catalog.db.pool, 'orders')).toBe(300);
    expect(await error()).toBeUndefined();
  });

  it('after a restart the old error stays gone; a new error shows', async () => {
    await daemon.stop('SIGKILL');
    daemon = await start();
    const polls = () => (daemon.output().match(/"msg":"PeerDB poll"/g) ?? []).length;
    await waitFor('rows synced 300 again', async () => (await rows()) === 300);
    const seen = polls();
    await waitFor('three more polls', () => polls() >= seen + 3);
    expect(await error()).toBeUndefined();
    await catalog.peerdb.log('orders', 'error', 'dial tcp 10.0.0.8:5432: connect: connection refused');
    await catalog.peerdb.setStatus('orders', 10);
    await waitFor('the new error', async () => (await error()) === 1);
    const { rows: r } = await ms.pool.query(`select error_message from mirrorstate.mirrors where mirror = 'orders'`);
    expect(r[0].error_message).toContain('10.0.0.8');
  });
});
