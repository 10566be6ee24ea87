/**
 * Rows synced read incrementally (rowsSynced.ts): after a leader's first poll, every later poll must
 * still equal PeerDB's own total (TotalRowsSyncedByMirror: CDC table counts plus finished partitions),
 * computed here by PeerDB's query over the whole tables. PeerDB is played by the test, writing the
 * way its workers write; the source reads as the SELECT-only role.
 */
import { isDeepStrictEqual } from 'node:util';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { readPeerdb, type Tails } from '../../src/source/peerdb/readPeerdb.js';
import { COUNTS_MARGIN_MS, RECONCILE_POLLS } from '../../src/source/peerdb/rowsSynced.js';
import { peerdbReader } from '../helpers/peerdb.js';

/** PeerDB's own total per mirror, over the whole tables. */
async function peerdbTotals(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ name: string; rows: string }>(
    `select f.name,
            coalesce((select sum(total_count) from peerdb_stats.cdc_table_aggregate_counts c where c.flow_name = f.name), 0)
          + coalesce((select sum(rows_synced) from peerdb_stats.qrep_partitions p where p.parent_mirror_name = f.name and p.end_time is not null), 0) as rows
       from flows f`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, Number(r.rows)]));
}

describe('rows synced, incrementally', () => {
  const reader = peerdbReader('rows', async (catalog) => {
    const p = catalog.peerdb;
    for (const name of ['orders', 'users', 'loads']) await p.createFlow(name, { status: 1 });
    await p.endBatch('orders', 1, 'public.a', 100);
    await p.partition('orders', 'clone_orders_public_a_r1', 1000, true);
    await p.partition('loads', 'clone_loads_public_b_r1', 300, false);
  });
  let tails: Tails | null = null;
  const poll = async (): Promise<Record<string, number>> => {
    const snapshot = await readPeerdb(reader.client, reader.shape, tails);
    tails = snapshot.tails;
    return Object.fromEntries(snapshot.flows.map((f) => [f.name, snapshot.rows?.get(f.name)?.rows ?? 0]));
  };
  const sql = (text: string, values: unknown[] = []) => reader.catalog.db.pool.query(text, values);

  it('reads created_at as TS would print it (the error rule compares them as text)', async () => {
    await sql(`update flows set created_at = '2026-11-21 10:00:40.5' where name = 'users'`);
    const snapshot = await readPeerdb(reader.client, reader.shape, null);
    const { rows } = await sql(`select name, to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at from flows`);
    expect(Object.fromEntries(snapshot.flows.map((f) => [f.name, f.createdAt]))).toEqual(Object.fromEntries(rows.map((r) => [r.name, r.at])));
    expect(snapshot.flows.find((f) => f.name === 'users')?.createdAt).toBe('2026-11-21T10:00:40.500000Z');
  });

  it('first poll: the whole tables', async () => {
    expect(await poll()).toEqual(await peerdbTotals(reader.catalog.db.pool));
    expect(await poll()).toMatchObject({ orders: 1100, users: 0, loads: 0 });
  });

  it('counts that change, a new table row, a partition that finishes later, a new partition', async () => {
    const p = reader.catalog.peerdb;
    await p.endBatch('orders', 2, 'public.a', 5);
    await p.endBatch('users', 1, 'public.u', 7);
    await sql(`update peerdb_stats.qrep_partitions set end_time = now() at time zone 'UTC' where parent_mirror_name = 'loads'`);
    await p.partition('users', 'clone_users_public_u_r1', 40, true);
    const totals = await poll();
    expect(totals).toEqual(await peerdbTotals(reader.catalog.db.pool));
    expect(totals).toMatchObject({ orders: 1105, users: 47, loads: 300 });
  });

  it('a counts row committed late with an old last_updated_at: within the margin at once, beyond it by reconciliation', async () => {
    // Within the margin: a transaction that began 30 s before the previous poll.
    await sql(`update peerdb_stats.cdc_table_aggregate_counts set total_count = total_count + 1,
                 last_updated_at = (now() at time zone 'UTC') - interval '30 seconds' where flow_name = 'orders'`);
    expect((await poll()).orders).toBe(1106);
    // Beyond the margin: not seen by the window, corrected within one reconciliation round.
    await sql(`update peerdb_stats.cdc_table_aggregate_counts set total_count = total_count + 1,
                 last_updated_at = (now() at time zone 'UTC') - make_interval(secs => $1) where flow_name = 'orders'`,
    [(COUNTS_MARGIN_MS / 1000) * 3]);
    let polls = 0;
    while ((await poll()).orders !== 1107) expect(++polls).toBeLessThanOrEqual(RECONCILE_POLLS);
  });

  it('rows PeerDB deletes and a rewritten finished partition: corrected by reconciliation', async () => {
    await sql(`delete from peerdb_stats.cdc_table_aggregate_counts where flow_name = 'users'`);
    await sql(`update peerdb_stats.qrep_partitions set rows_synced = 1500 where parent_mirror_name = 'orders'`);
    const want = await peerdbTotals(reader.catalog.db.pool);
    expect(want).toMatchObject({ users: 40, orders: 1607 });
    let polls = 0;
    while (!isDeepStrictEqual(await poll(), want)) expect(++polls).toBeLessThanOrEqual(RECONCILE_POLLS);
  });

  it('a flow recreated under its name (resync): PeerDB deletes its stats, the next poll reads whole', async () => {
    await sql(`delete from peerdb_stats.qrep_partitions where parent_mirror_name = 'orders'`);
    await sql(`delete from peerdb_stats.cdc_table_aggregate_counts where flow_name = 'orders'`);
    await sql(`delete from flows where name = 'orders'`);
    await reader.catalog.peerdb.createFlow('orders', { status: 1 });
    await sql(`update flows set created_at = created_at + interval '1 second' where name = 'orders'`);
    const totals = await poll();
    expect(totals).toEqual(await peerdbTotals(reader.catalog.db.pool));
    expect(totals.orders).toBe(0);
  });

  it('a finished partition committed after a poll under an id below the highest that poll saw', async () => {
    // Ids far above the reconciliation slice of these polls: only the hole lookup can find it.
    await sql(`select setval('peerdb_stats.qrep_partitions_id_seq', 100000)`);
    await poll();
    const open = await reader.catalog.db.pool.connect();
    try {
      await open.query('begin');
      await open.query(`insert into peerdb_stats.qrep_runs (flow_name, run_uuid, parent_mirror_name) values ('clone_users_v_r9', 'run-late', 'users')`);
      await open.query(`insert into peerdb_stats.qrep_partitions (flow_name, run_uuid, partition_uuid, restart_count, rows_synced, end_time, parent_mirror_name)
                        values ('clone_users_v_r9', 'run-late', 'p1', 0, 9, now() at time zone 'UTC', 'users')`);
      await reader.catalog.peerdb.partition('users', 'clone_users_public_w_r2', 20, true);
      expect((await poll()).users).toBe(60);
      await open.query('commit');
    } finally {
      open.release();
    }
    const totals = await poll();
    expect(totals).toEqual(await peerdbTotals(reader.catalog.db.pool));
    expect(totals.users).toBe(69);
  });
});

describe('the newest error remembered per flow name', () => {
  const reader = peerdbReader('errtail');

  it('keeps current flows and their snapshot children, forgets the names of dropped ones', async () => {
    const p = reader.catalog.peerdb;
    for (const name of ['keep', 'gone']) await p.createFlow(name, { status: 1 });
    let tails = (await readPeerdb(reader.client, reader.shape, null)).tails;
    for (const flow of ['keep', 'clone_keep_public_t_r1', 'gone', 'clone_gone_public_t_r1', 'never_a_flow']) await p.log(flow, 'error', `boom in ${flow}`);
    tails = (await readPeerdb(reader.client, reader.shape, tails)).tails;
    expect([...tails.errors.keys()].sort()).toEqual(['clone_gone_public_t_r1', 'clone_keep_public_t_r1', 'gone', 'keep']);
    await p.drop('gone');
    tails = (await readPeerdb(reader.client, reader.shape, tails)).tails;
    expect([...tails.errors.keys()].sort()).toEqual(['clone_keep_public_t_r1', 'keep']);
  });

  it('finds an error row committed after a poll under an id below the highest that poll saw', async () => {
    await reader.catalog.peerdb.createFlow('late', { status: 1 });
    let tails = (await readPeerdb(reader.client, reader.shape, null)).tails;
    const open = await reader.catalog.db.pool.connect();
    try {
      await open.query('begin');
      await open.query(`insert into peerdb_stats.flow_errors (flow_name, error_message, error_type, error_timestamp)
                        values ('late', 'written first, committed last', 'error', now() at time zone 'UTC')`);
      await reader.catalog.peerdb.log('keep', 'warn', 'a later id, committed at once');
      tails = (await readPeerdb(reader.client, reader.shape, tails)).tails;
      expect(tails.errors.has('late')).toBe(false);
      await open.query('commit');
    } finally {
      open.release();
    }
    tails = (await readPeerdb(reader.client, reader.shape, tails)).tails;
    expect(tails.errors.get('late')?.message).toBe('written first, committed last');
  });
});

describe('the flows, handed on while the flows table is unchanged', () => {
  const reader = peerdbReader('flowskey', async (catalog) => {
    for (const name of ['a', 'b']) await catalog.peerdb.createFlow(name, { status: 1 });
  });

  it('an idle poll hands on the same rows; an update, an insert, a delete or a renamed peer is read', async () => {
    const sql = (text: string) => reader.catalog.db.pool.query(text);
    let snapshot = await readPeerdb(reader.client, reader.shape, null);
    const first = snapshot.flows;
    snapshot = await readPeerdb(reader.client, reader.shape, snapshot.tails);
    expect(snapshot.flows).toBe(first);

    await sql(`update flows set status = 3 where name = 'a'`);
    snapshot = await readPeerdb(reader.client, reader.shape, snapshot.tails);
    expect(snapshot.flows.find((f) => f.name === 'a')?.status).toBe(3);

    await reader.catalog.peerdb.createFlow('c', { status: 1 });
    snapshot = await readPeerdb(reader.client, reader.shape, snapshot.tails);
    expect(snapshot.flows.map((f) => f.name).sort()).toEqual(['a', 'b', 'c']);

    await sql(`delete from flows where name = 'b'`);
    snapshot = await readPeerdb(reader.client, reader.shape, snapshot.tails);
    expect(snapshot.flows.map((f) => f.name).sort()).toEqual(['a', 'c']);

    const source = snapshot.flows[0]!.source!;
    await sql(`update peers set name = 'renamed' where name = '${source}'`);
    snapshot = await readPeerdb(reader.client, reader.shape, snapshot.tails);
    expect(snapshot.flows.every((f) => f.source === 'renamed')).toBe(true);
  });
});

describe('the tables, kept through a change of the flows that moves none of their sources', () => {
  const reader = peerdbReader('tableskept', async (catalog) => {
    for (const name of ['a', 'b', 'c']) await catalog.peerdb.createFlow(name, { status: 1 });
  });

  it('a status UPDATE, which moves the row to the end of the flows table, rebuilds no table', async () => {
    let snapshot = await readPeerdb(reader.client, reader.shape, null);
    snapshot = await readPeerdb(reader.client, reader.shape, snapshot.tails);
    const tables = snapshot.tables;
    expect([...(tables?.keys() ?? [])].sort()).toEqual(['a', 'b', 'c']);
    // A new row version: a sequential scan of flows now returns `a` after `b` and `c`.
    await reader.catalog.db.pool.query(`update flows set status = 2 where name = 'a'`);
    const { rows } = await reader.catalog.db.pool.query<{ name: string }>('select name from flows');
    expect(rows.map((r) => r.name)).toEqual(['b', 'c', 'a']);
    snapshot = await readPeerdb(reader.client, reader.shape, snapshot.tails);
    expect(snapshot.flows.find((f) => f.name === 'a')?.status).toBe(2);
    expect(snapshot.tables).toBe(tables);
  });
});

describe("the newest slot sample, on a leader's first poll", () => {
  const reader = peerdbReader('slotnewest', async (catalog) => {
    for (const name of ['recent', 'stopped', 'tie']) await catalog.peerdb.createFlow(name, { status: 1 });
  });

  it('is the newest by time then id, for slots sampled in the last minutes and for slots whose samples stopped hours ago', async () => {
    const p = reader.catalog.peerdb;
    // `recent`: sampled every minute, newest last; `stopped`: its samples end 3 hours before the
    // newest sample of any slot, so only the lookup by name finds it.
    for (let minutes = 10; minutes >= 0; minutes--) await p.slotSample('recent', 100 + minutes, { agoSeconds: minutes * 60 });
    for (const hours of [5, 3]) await p.slotSample('stopped', hours, { agoSeconds: hours * 3600 });
    // `tie`: two samples at the same time: the higher id is the newer.
    await reader.catalog.db.pool.query(
      `insert into peerdb_stats.peer_slot_size (slot_name, peer_name, slot_size, updated_at)
       select 'peerflow_slot_tie', 'pg_source', s, date_trunc('second', now() at time zone 'UTC') from generate_series(1, 2) s`,
    );
    const { tails } = await readPeerdb(reader.client, reader.shape, null);
    const mib = (slot: string) => (tails.slots.get(slot)?.bytes ?? 0) / 1_048_576;
    expect([mib('peerflow_slot_recent'), mib('peerflow_slot_stopped'), mib('peerflow_slot_tie')]).toEqual([100, 3, 2]);
  });
});
