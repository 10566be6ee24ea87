/**
 * A PeerDB mirror's tables (docs/peerdb.md, Tables): an initial load walked partition by partition
 * as PeerDB writes it, a failing table's snapshot, CDC activity, and resyncs with and without the
 * drop of stats. The daemon as a process reading the catalog as the SELECT-only role, seen on
 * /metrics and in the read API; and the incremental read against a fresh whole read of the same
 * catalog after every kind of change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPeerdb, readShape, type Tails } from '../../src/source/peerdb/readPeerdb.js';
import { RECONCILE_POLLS } from '../../src/source/peerdb/rowsSynced.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, type PeerdbCatalog, peerdbReader } from '../helpers/peerdb.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const STATUS = { running: 1, setup: 4, snapshot: 5, resync: 9 } as const;
const REFUSED = 'dial tcp 10.0.0.7:5432: connect: connection refused';

interface Table { table: string; rowsSynced: number | null; lastSyncedAt: string | null; error: { class: string; message: string } | null;
  snapshot: { partitions: number | null; partitionsSynced: number | null; rowsSynced: number | null; startedAt: string | null; finishedAt: string | null } | null }

describe('tables from PeerDB, the daemon as a process', () => {
  let catalog: PeerdbCatalog;
  let ms: TestDatabase;
  let daemon: DaemonProcess;
  const sql = (text: string, values: unknown[] = []) => catalog.db.pool.query(text, values);
  const metric = async (name: string, labels: Record<string, string>) => seriesValue(await scrape(daemon.url), `peerdb_mirror_table_${name}`, labels);
  const tables = async (mirror: string): Promise<Table[]> => {
    const res = await fetch(`${daemon.url}/api/v1/mirrors/${mirror}`);
    return res.status === 200 ? ((await res.json()) as { tables: Table[] }).tables : [];
  };
  const load = async (mirror: string, table: string) => (await tables(mirror)).find((t) => t.table === table)?.snapshot ?? null;
  /** PeerDB's own initial-load summary (mirror_status.go InitialLoadSummary) for one child flow. */
  const summary = async (child: string) =>
    (await sql(
      `select count(*)::int as total, count(end_time)::int as done, coalesce(sum(rows_synced) filter (where end_time is not null), 0)::int as rows
         from peerdb_stats.qrep_partitions where flow_name = $1`, [child],
    )).rows[0] as { total: number; done: number; rows: number };

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('tables');
    ms = await createTestDatabase('peerdb_tables');
    daemon = await startDaemon({
      databaseUrl: ms.url,
      env: { MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s', MIRRORSTATE_PEERDB_NUMBERS_INTERVAL: '1s' },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    await ms?.drop();
    await catalog?.drop();
  });

  it('walks an initial load partition by partition, shows a failing table’s error until it gets on, then CDC activity', async () => {
    const p = catalog.peerdb;
    await p.createFlow('shop');
    await p.setStatus('shop', STATUS.snapshot);
    // Planning: the run exists, no partitions yet — the table is there, its load figures unknown.
    await p.planLoad('shop', 'public.orders', null);
    await waitFor('the table while its load plans', async () => (await tables('shop')).map((t) => t.table).join() === 'public.orders');
    expect(await load('shop', 'public.orders')).toBeNull();
    expect(seriesValue(await scrape(daemon.url), 'peerdb_mirror_tables', { mirror: 'shop' })).toBe(1);

    const orders = await p.planLoad('shop', 'public.orders', 3);
    const items = await p.planLoad('shop', 'public.items', 2);
    await waitFor('both loads planned', async () =>
      (await metric('snapshot_partitions', { mirror: 'shop', table: 'public.orders' })) === 3 &&
      (await metric('snapshot_partitions', { mirror: 'shop', table: 'public.items' })) === 2);
    expect(await metric('snapshot_partitions_synced', { mirror: 'shop', table: 'public.orders' })).toBe(0);

    // Partition by partition: each step on /metrics, equal to PeerDB's own summary.
    const rows = [100, 200, 50];
    for (let i = 0; i < 3; i++) {
      await p.startPartition(orders, i);
      await p.finishPartition(orders, i, rows[i]!);
      const peerdb = await summary(orders.child);
      await waitFor(`partition ${i + 1} of 3 on /metrics`, async () =>
        (await metric('snapshot_partitions_synced', { mirror: 'shop', table: 'public.orders' })) === peerdb.done &&
        (await metric('snapshot_rows_synced', { mirror: 'shop', table: 'public.orders' })) === peerdb.rows);
      expect(peerdb).toEqual({ total: 3, done: i + 1, rows: rows.slice(0, i + 1).reduce((a, b) => a + b, 0) });
    }
    const { rows: [times] } = await sql(
      `select to_char(min(start_time), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as started, to_char(max(end_time), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as finished
         from peerdb_stats.qrep_partitions where flow_name = $1`, [orders.child],
    );
    // The run's own start_time is rewritten at each batch of partitions: it must not be what shows.
    await sql(`update peerdb_stats.qrep_runs set start_time = now() at time zone 'UTC' where flow_name = $1`, [orders.child]);
    expect(await load('shop', 'public.orders')).toEqual({ partitions: 3, partitionsSynced: 3, rowsSynced: 350, startedAt: times.started, finishedAt: times.finished });

    // A failing table: its child logs an error after its first partition; shown, then gone once a
    // later partition finishes (PeerDB retried and got on).
    await p.startPartition(items, 0);
    await p.finishPartition(items, 0, 10);
    await p.log(items.child, 'error', REFUSED);
    await p.log(items.child, 'warn', 'slow');
    await waitFor('the table error', async () => (await metric('error', { mirror: 'shop', table: 'public.items', class: 'connection' })) === 1);
    expect(await metric('error', { mirror: 'shop', table: 'public.orders', class: 'connection' })).toBeUndefined();
    expect((await tables('shop')).find((t) => t.table === 'public.items')?.error).toEqual({ class: 'connection', message: REFUSED });
    await p.startPartition(items, 1);
    await p.finishPartition(items, 1, 20);
    await waitFor('the table error gone', async () => (await metric('error', { mirror: 'shop', table: 'public.items', class: 'connection' })) === undefined);
    expect(await load('shop', 'public.items')).toMatchObject({ partitions: 2, partitionsSynced: 2, rowsSynced: 30 });

    // CDC: the table's counts.
    await p.setStatus('shop', STATUS.running);
    await p.startBatch('shop', 1, 40);
    await p.endBatch('shop', 1, 'public.orders', 40);
    await waitFor('CDC rows of the table', async () => (await metric('rows_synced_total', { mirror: 'shop', table: 'public.orders' })) === 40);
    const { rows: [counted] } = await sql(
      `select extract(epoch from last_updated_at)::float8 as at from peerdb_stats.cdc_table_aggregate_counts where flow_name = 'shop' and destination_table_name = 'public.orders'`,
    );
    expect(await metric('last_synced_timestamp_seconds', { mirror: 'shop', table: 'public.orders' })).toBeCloseTo(counted.at, 3);
    expect(await metric('rows_synced_total', { mirror: 'shop', table: 'public.items' })).toBeUndefined();
  });

  it('a resync with the stats dropped: the new load under the table’s own name, from nothing; gone tables leave', async () => {
    const p = catalog.peerdb;
    await p.setStatus('shop', STATUS.resync);
    await p.dropStats('shop');
    await p.setStatus('shop', STATUS.setup);
    await p.setStatus('shop', STATUS.snapshot);
    const again = await p.planLoad('shop', 'public.orders', 2, { runId: 'r2', resync: true });
    await waitFor('the new load under public.orders', async () => {
      const t = await tables('shop');
      return t.map((x) => x.table).join() === 'public.orders' && t[0]!.snapshot?.partitions === 2;
    });
    // /metrics follows the catalog by its own reads (a scrape while one runs is answered from the
    // snapshot before it): the gone table leaves within one, and the resync's table never shows.
    let text = await scrape(daemon.url);
    await waitFor('public.items gone from /metrics', async () => !(text = await scrape(daemon.url)).includes('table="public.items"'));
    expect(text).not.toContain('public.orders_resync');
    expect(await load('shop', 'public.orders')).toEqual({ partitions: 2, partitionsSynced: 0, rowsSynced: 0, startedAt: null, finishedAt: null });
    await p.startPartition(again, 0);
    await p.finishPartition(again, 0, 7);
    await waitFor('the new load’s progress', async () => (await metric('snapshot_partitions_synced', { mirror: 'shop', table: 'public.orders' })) === 1);
    expect(await metric('snapshot_rows_synced', { mirror: 'shop', table: 'public.orders' })).toBe(7);
  });

  it('a resync that keeps the stats: an old load’s error never shows after the entry, the new load replaces the old', async () => {
    const p = catalog.peerdb;
    await p.createFlow('keep');
    await p.setStatus('keep', STATUS.snapshot);
    const first = await p.planLoad('keep', 'public.t', 2);
    await p.startPartition(first, 0);
    await p.finishPartition(first, 0, 5);
    await p.log(first.child, 'error', REFUSED);
    await waitFor('the first load’s error', async () => (await metric('error', { mirror: 'keep', table: 'public.t', class: 'connection' })) === 1);

    // Resync, stats kept: the old run stays the table's newest until the new load's run is written.
    await p.setStatus('keep', STATUS.resync);
    await waitFor('keep in resync', async () => seriesValue(await scrape(daemon.url), 'peerdb_mirror_status', { mirror: 'keep', status: 'resync' }) === 1);
    await waitFor('the old error gone', async () => (await metric('error', { mirror: 'keep', table: 'public.t', class: 'connection' })) === undefined);
    expect(await load('keep', 'public.t')).toMatchObject({ partitions: 2, partitionsSynced: 1 });

    await p.setStatus('keep', STATUS.snapshot);
    await p.planLoad('keep', 'public.t', 4, { runId: 'r2', resync: true });
    await waitFor('the new load', async () => (await load('keep', 'public.t'))?.partitions === 4);
    expect(await load('keep', 'public.t')).toMatchObject({ partitionsSynced: 0, rowsSynced: 0 });
    expect(await metric('error', { mirror: 'keep', table: 'public.t', class: 'connection' })).toBeUndefined();
  });
});

describe('the incremental read of tables', () => {
  const reader = peerdbReader('tables_incremental');

  it('equals a whole read of the same catalog after every kind of change', async () => {
    const p = reader.catalog.peerdb;
    const sql = (text: string, values: unknown[] = []) => reader.catalog.db.pool.query(text, values);
    const shape = await readShape(reader.client);
    expect(shape.tables).toEqual({ namespaced: false });
    let tails: Tails | null = null;
    const check = async (what: string) => {
      const incremental = await readPeerdb(reader.client, shape, tails);
      tails = incremental.tails;
      const whole = await readPeerdb(reader.client, shape, null);
      const view = (m: typeof whole.tables) => Object.fromEntries([...(m ?? [])].map(([k, v]) => [k, v.entries]));
      expect(view(incremental.tables), what).toEqual(view(whole.tables));
      return view(incremental.tables);
    };
    // Runs of a mirror long gone take the first 2,000 ids: the rolling reconciliation slice reaches
    // the test's runs only after 20 polls, so what a poll sees sooner it sees by its own rules.
    await sql(`insert into peerdb_stats.qrep_runs (flow_name, run_uuid, destination_table, parent_mirror_name)
               select 'clone_gone_t_' || g, 'r' || g, 't', 'gone' from generate_series(1, 2000) g`);
    await p.createFlow('a');
    await p.createFlow('a_b');
    await p.setStatus('a', STATUS.snapshot);
    await check('empty');
    const la = await p.planLoad('a', 'public.x', 2);
    const lab = await p.planLoad('a_b', 'public.x', 1);
    await check('two loads, prefix-sharing mirror names');
    await p.startPartition(la, 0);
    await p.finishPartition(la, 0, 3);
    await p.log(la.child, 'error', REFUSED);
    await p.log(lab.child, 'error', 'relation "x" does not exist');
    await check('a partition, errors');
    await p.setStatus('a', STATUS.running);
    await p.setStatus('a_b', STATUS.running);
    await p.startBatch('a', 1, 9);
    await p.endBatch('a', 1, 'public.x', 9);
    await p.endBatch('a_b', 1, 'public.y', 4);
    const seen = await check('CDC counts');
    expect(seen.a).toEqual([{ table: 'public.x', rowsSynced: 9, lastSyncedAt: expect.any(String),
      snapshot: { partitions: 2, partitionsSynced: 1, rowsSynced: 3, startedAt: expect.any(String) }, error: { class: 'connection', message: REFUSED } }]);
    // One mirror's counts move: its tables are rebuilt, the other mirror's handed on as they were.
    const built = () => (tails as Tails | null)?.tables?.built;
    const [aBefore, abBefore] = [built()?.get('a'), built()?.get('a_b')];
    await p.startBatch('a', 2, 5);
    await p.endBatch('a', 2, 'public.x', 5);
    expect((await check('one mirror moved')).a?.[0]?.rowsSynced).toBe(14);
    expect(built()?.get('a')).not.toBe(aBefore);
    expect(built()?.get('a_b')).toBe(abBefore);
    // A table's load planning (its run, no partition yet): listed, its mirror alone rebuilt.
    await p.planLoad('a_b', 'public.w', null);
    expect((await check('a run planning')).a_b?.map((t) => t.table)).toEqual(['public.w', 'public.x', 'public.y']);
    // A resync that drops the stats, seen at the next poll.
    await p.setStatus('a', STATUS.resync);
    await check('resync entered');
    await p.dropStats('a');
    const after = await check('stats dropped');
    expect(after.a).toEqual([]);
    await p.planLoad('a', 'public.x', 1, { runId: 'r2', resync: true });
    expect((await check('the resync load')).a).toEqual([{ table: 'public.x', snapshot: { partitions: 1, partitionsSynced: 0, rowsSynced: 0 } }]);
    // A run deleted while its mirror runs (a cancelled table addition): forgotten by the rolling slice.
    await sql(`delete from peerdb_stats.qrep_runs where flow_name = $1`, [lab.child]);
    for (let i = 0; i < RECONCILE_POLLS; i++) await readPeerdb(reader.client, shape, tails).then((s) => (tails = s.tails));
    await check('a deleted run');
    // A flow dropped, one created.
    await p.drop('a_b');
    await p.createFlow('c');
    await p.planLoad('c', 'public.z', 1);
    expect(Object.keys(await check('flows changed')).sort()).toEqual(['a', 'c']);
  });
});

describe('tables where PeerDB records their namespace apart (PeerDB PR #4416)', () => {
  const reader = peerdbReader('tables_namespaced', async (catalog) => {
    // The PR's change: a namespace column, and the key widened by it.
    await catalog.db.pool.query(`
      alter table peerdb_stats.cdc_table_aggregate_counts add column destination_table_namespace text not null default '';
      alter table peerdb_stats.cdc_table_aggregate_counts drop constraint cdc_table_aggregate_counts_pkey;
      alter table peerdb_stats.cdc_table_aggregate_counts add primary key (flow_name, destination_table_namespace, destination_table_name)`);
  });

  it('keeps same-named tables of two namespaces apart, in the tables and in the mirror’s total', async () => {
    await reader.catalog.peerdb.createFlow('ns', { status: STATUS.running });
    await reader.catalog.db.pool.query(
      `insert into peerdb_stats.cdc_table_aggregate_counts (flow_name, destination_table_namespace, destination_table_name, total_count, last_updated_at)
       values ('ns', 'sales', 'orders', 5, now()), ('ns', 'hr', 'orders', 7, now()), ('ns', '', 'public.x', 1, now()), ('ns', 'public', 'public.y', 2, now())`,
    );
    const shape = await readShape(reader.client);
    expect(shape.tables).toEqual({ namespaced: true });
    const snapshot = await readPeerdb(reader.client, shape, null);
    expect(snapshot.tables?.get('ns')?.entries.map((t) => [t.table, t.rowsSynced])).toEqual([
      ['hr.orders', 7], ['public.x', 1], ['public.y', 2], ['sales.orders', 5],
    ]);
    expect(snapshot.rows?.get('ns')?.rows).toBe(15);
  });
});
