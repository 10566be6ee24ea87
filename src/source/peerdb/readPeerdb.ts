/**
 * The one snapshot read of PeerDB's catalog per poll (docs/peerdb.md): every statement runs inside one
 * `repeatable read read only` transaction, so flows and their stats come from the same instant, and
 * `now()` in it is the PeerDB catalog's clock at the poll (the `observedAt` of what we publish).
 *
 * Read only: SELECTs on public.flows, public.peers and peerdb_stats tables, nothing else. No temp
 * tables, no advisory locks, no `set` beyond the session settings given at connect (see
 * `PEERDB_SESSION_OPTIONS`).
 *
 * Scale: a PeerDB catalog holds thousands of flows and millions of `cdc_batches` and
 * `peer_slot_size` rows. Every statement names the PeerDB index it relies on; the append-only history
 * tables (`peer_slot_size`, `flow_errors`) are read whole never: the first poll of a leader takes the
 * newest row per name through the name index, and later polls read only the rows appended since
 * (`id >` the last seen, and the holes below it, through the primary key), which `Tails` merges
 * into what it remembers.
 * Rows synced likewise: see rowsSynced.ts.
 */
import type pg from 'pg';
import { UTC_MICROS } from '../../catalog/sql.js';
import { decodeFlowConfig, type FlowConfig, NO_CONFIG } from './config.js';
import { CLONE_PREFIX, type ErrorRow, type FlowRow, nextHoles, parentOf, topAndHoles } from './rows.js';
import { readRowsSynced, type RowsMemory, type RowTotals } from './rowsSynced.js';
import { buildTables, flowsKeyOf, type MirrorTables, readRuns, type TablesMemory } from './tables.js';

/** Session settings of the PeerDB connection: PeerDB's `timestamp` columns hold UTC (its workers
 * write `now()` of a UTC server, or Go's UTC time), so the session reads them as UTC, printed in
 * ISO form whatever the server's DateStyle (rfc3339 parses it); every
 * transaction is read only even if a statement here were ever wrong; no statement runs long. */
export const PEERDB_SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO -c default_transaction_read_only=on -c statement_timeout=30000';

/** The slot PeerDB creates for a CDC mirror unless its config names another (config.ts). */
export const SLOT_PREFIX = 'peerflow_slot_';
/** peer_slot_size.slot_size is in MiB (PeerDB computes pg_wal_lsn_diff(...) / 1024 / 1024). */
export const MIB = 1_048_576;
/** PeerDB's DBType of a PostgreSQL peer: only those have a replication slot whose size PeerDB samples. */
export const POSTGRES_PEER_TYPE = 3;

export class PeerdbTooOldError extends Error {
  constructor() {
    super(
      'PeerDB catalog has no column flows.status: PeerDB before its migration V44 (V44__flow_status.sql, ' +
        'PR #2634) does not record mirror status. Upgrade PeerDB, or unset MIRRORSTATE_PEERDB_URL.',
    );
    this.name = 'PeerdbTooOldError';
  }
}

/** What exists in this PeerDB catalog (read once per connection): missing stats leave fields out. */
export interface PeerdbShape {
  /** cdc_batches: lagSeconds. `syncTime` false before V50: the batch's start_time stands in. */
  cdcBatches: { syncTime: boolean } | null;
  /** cdc_table_aggregate_counts (V43) and qrep_partitions.parent_mirror_name (V37): rowsSynced. */
  rowsSynced: boolean;
  slotSizes: boolean;
  /** peer_slot_size.wal_status exists: slotWalStatus. */
  slotWalStatus: boolean;
  flowErrors: boolean;
  /** qrep_runs.parent_mirror_name (V37): the names of snapshot children, for the first poll. */
  qrepRuns: boolean;
  /** What tables.ts reads exists; `namespaced`: cdc_table_aggregate_counts.destination_table_namespace (PeerDB PR #4416). */
  tables: { namespaced: boolean } | null;
}

const COLUMNS_WE_READ: Record<string, string[]> = {
  'public.flows': ['name', 'status', 'workflow_id', 'query_string', 'source_peer', 'destination_peer', 'created_at', 'updated_at', 'config_proto'],
  'public.peers': ['id', 'name', 'type'],
  'peerdb_stats.cdc_batches': ['flow_name', 'start_time', 'end_time'],
  'peerdb_stats.cdc_table_aggregate_counts': ['flow_name', 'total_count', 'last_updated_at'],
  'peerdb_stats.qrep_partitions': ['parent_mirror_name', 'rows_synced', 'end_time'],
  'peerdb_stats.qrep_runs': ['flow_name', 'parent_mirror_name'],
  'peerdb_stats.peer_slot_size': ['id', 'slot_name', 'slot_size', 'updated_at'],
  'peerdb_stats.flow_errors': ['id', 'flow_name', 'error_message', 'error_type', 'error_timestamp'],
};

/** What tables.ts reads beyond the rows-synced columns. */
const TABLE_COLUMNS = [
  'peerdb_stats.cdc_table_aggregate_counts.destination_table_name', 'peerdb_stats.qrep_partitions.flow_name',
  'peerdb_stats.qrep_partitions.start_time', 'peerdb_stats.qrep_runs.id', 'peerdb_stats.qrep_runs.destination_table',
];

/** Reads which tables and columns exist (and are readable by our role). Throws PeerdbTooOldError. */
export async function readShape(client: pg.ClientBase): Promise<PeerdbShape> {
  const { rows } = await client.query<{ t: string; c: string }>(
    `select table_schema || '.' || table_name as t, column_name as c
       from information_schema.columns
      where table_schema in ('public', 'peerdb_stats') and table_name = any($1::text[])`,
    [Object.keys(COLUMNS_WE_READ).map((t) => t.split('.')[1])],
  );
  const have = new Set(rows.map((r) => `${r.t}.${r.c}`));
  const complete = (table: string) => (COLUMNS_WE_READ[table] ?? []).every((c) => have.has(`${table}.${c}`));
  if (!have.has('public.flows.status')) throw new PeerdbTooOldError();
  if (!complete('public.flows') || !complete('public.peers')) {
    const missing = ['public.flows', 'public.peers'].flatMap((t) => (COLUMNS_WE_READ[t] ?? []).filter((c) => !have.has(`${t}.${c}`)).map((c) => `${t}.${c}`));
    throw new Error(`PeerDB catalog lacks ${missing.join(', ')} (or the role may not read them): grant SELECT on public.flows and public.peers`);
  }
  const rowsSynced = complete('peerdb_stats.cdc_table_aggregate_counts') && complete('peerdb_stats.qrep_partitions');
  return {
    cdcBatches: complete('peerdb_stats.cdc_batches') ? { syncTime: have.has('peerdb_stats.cdc_batches.sync_time') } : null,
    rowsSynced,
    slotSizes: complete('peerdb_stats.peer_slot_size'),
    slotWalStatus: have.has('peerdb_stats.peer_slot_size.wal_status'),
    flowErrors: complete('peerdb_stats.flow_errors'),
    qrepRuns: complete('peerdb_stats.qrep_runs'),
    tables: rowsSynced && complete('peerdb_stats.qrep_runs') && TABLE_COLUMNS.every((c) => have.has(c))
      ? { namespaced: have.has('peerdb_stats.cdc_table_aggregate_counts.destination_table_namespace') }
      : null,
  };
}

/** The slot whose samples are a CDC mirror's slot lag: the one its config names, else PeerDB's default. */
export function slotOf(flow: Pick<FlowRow, 'name' | 'config'>): string {
  return flow.config.slotName ?? SLOT_PREFIX + flow.name;
}

/** How far back from the newest slot sample a leader's first poll looks before looking slots up by name. */
const RECENT_SLOT_MINUTES = 5;

export interface SlotSample {
  id: number;
  bytes: number | null;
  /** RFC 3339 UTC, microseconds: the sample's updated_at (it can be hours old, docs/peerdb.md). */
  at: string;
  /** pg_replication_slots.wal_status at the sample; null when PeerDB recorded none. */
  walStatus: string | null;
}

/**
 * What the poller remembers of the history tables between polls (null on a leader's first poll):
 * the newest slot sample per slot name, the newest `error` row per flow name, and how far each
 * table was read.
 */
export interface Tails {
  slotAfterId: number;
  /** Ids at or below slotAfterId, within TAIL_LOOKBACK_IDS of it, not seen yet. */
  slotHoles: number[];
  slots: Map<string, SlotSample>;
  errorAfterId: number;
  errorHoles: number[];
  errors: Map<string, ErrorRow>;
  /** The rows-synced read's memory (rowsSynced.ts); null: not read yet. */
  rows?: RowsMemory | null;
  /** Slot names whose newest sample was looked up by name (a slot first named after the first poll). */
  slotsLooked?: Set<string>;
  /** Per flow: the row version its config was decoded at, and what it said. */
  configs?: Map<string, { version: string; config: FlowConfig }>;
  /** tables.ts's memory; null: not read yet. */
  tables?: TablesMemory | null;
  /** The flows as this poll read them, with the version of the whole table they were read at. */
  flows?: FlowsRead;
}

/** The flows of a poll, kept for the next: an unchanged `flows` table is not read again. */
export interface FlowsRead {
  /** Every flow row's version (ctid and xmin) and the peers, as HEAD returns them. */
  key: string;
  rows: FlowRow[];
  names: ReadonlySet<string>;
}

export interface PeerdbSnapshot {
  /** PeerDB's clock at the poll, RFC 3339 UTC with microseconds. */
  now: string;
  flows: FlowRow[];
  /** Seconds since the oldest unnormalized batch's sync, per flow with one pending; null: not read. */
  pendingLag: Map<string, number> | null;
  /** Per mirror: CDC table counts plus finished partitions (own or snapshot children); null: not read. */
  rows: RowTotals | null;
  /** Merged tails: newest slot sample per slot, newest error per flow name. */
  tails: Tails;
  shape: PeerdbShape;
  /** Configs that did not decode, first seen at this poll's read of their row version. */
  undecodable: { mirror: string; reason: string }[];
  /** Per CDC mirror, its tables (tables.ts); null: PeerDB's catalog lacks what they come from. */
  tables: ReadonlyMap<string, MirrorTables> | null;
  /** Mirrors with more tables than an update may carry, built at this poll. */
  truncated: { mirror: string; tables: number }[];
}

// Every bigint read here is cast to float8 (exact below 2^53, which ids, byte counts and row totals
// stay under): node-pg returns int8 as a string unless a process-wide parser says otherwise, and
// this read must not depend on which modules the process happened to load (src/db/pool.ts sets one).

/** A `timestamp` as PostgreSQL prints it with DateStyle ISO (`2026-11-21 10:00:40.5`) → the
 * RFC 3339 UTC form with microseconds that UTC_MICROS gives (`2026-11-21T10:00:40.500000Z`). */
export function rfc3339(iso: string): string {
  const dot = iso.indexOf('.', 19);
  const fraction = dot < 0 ? '' : iso.slice(dot + 1);
  return `${iso.slice(0, 10)}T${iso.slice(11, 19)}.${fraction.padEnd(6, '0')}Z`;
}

/** Newest first by (at, id): the order every "newest row" rule here uses. */
function newer<T extends { id: number; at: string }>(a: T, b: T | undefined): boolean {
  return b === undefined || a.at > b.at || (a.at === b.at && a.id > b.id);
}

/** Folds rows appended since the last poll into what the tails remember. Pure. */
export function mergeTail<T extends { id: number; at: string }>(memory: Map<string, T>, rows: readonly [string, T][]): Map<string, T> {
  if (rows.length === 0) return memory;
  const merged = new Map(memory);
  for (const [key, row] of rows) if (newer(row, merged.get(key))) merged.set(key, row);
  return merged;
}

/**
 * One poll's read. `client` is a connection opened with PEERDB_SESSION_OPTIONS; the transaction is
 * begun and ended here. `tails` null: a first poll, which seeds the tails through the name indexes.
 */
export async function readPeerdb(client: pg.ClientBase, shape: PeerdbShape, tails: Tails | null): Promise<PeerdbSnapshot> {
  try {
    // The transaction's start and its first read in one round trip (a multi-statement simple
    // query, no parameters): each statement here is a round trip to PeerDB's catalog.
    const [, head] = (await client.query(`begin isolation level repeatable read read only; ${HEAD}`)) as unknown as [pg.QueryResult, pg.QueryResult<Head>];
    const snapshot = await readInTransaction(client, shape, tails, head.rows[0]!);
    await client.query('commit');
    return snapshot;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  }
}

/**
 * The clock, the peers (a handful of rows) and the version of the flows table, the first read of
 * every poll. Any insert, update or delete of a flows row changes the row versions (ctid and xmin)
 * listed in `flows_key`: when it and the peers equal the previous poll's, the flows this poll would
 * read are the ones that poll read, and they are handed on instead of being read and built again
 * (most polls: PeerDB rewrites a flows row on a status change or a config edit). The server builds
 * the key from the same seq scan as the read itself, without sending a row.
 */
const HEAD = `select ${UTC_MICROS('now()')} as now, coalesce((select json_agg(json_build_array(id, name, type) order by id) from peers), '[]')::text as peers,
  (select md5(coalesce(string_agg(ctid::text || xmin::text, ',' order by ctid), '')) from flows) as flows_key`;
type Head = { now: string; peers: string; flows_key: string };

async function readInTransaction(client: pg.ClientBase, shape: PeerdbShape, tails: Tails | null, head: Head): Promise<PeerdbSnapshot> {
  // Flows are joined to the peers here rather than in SQL: two hash joins and to_char on every flow
  // cost the server more than the whole scan.
  const now = head.now;
  const key = `${head.flows_key}${head.peers}`;
  const { flows, configs, undecodable } = tails?.flows?.key === key && tails.configs
    ? { flows: tails.flows, configs: tails.configs, undecodable: [] }
    : await readFlows(client, head, key, tails?.configs);
  return readStats(client, shape, tails, now, flows, configs, undecodable);
}

async function readFlows(
  client: pg.ClientBase, head: Head, key: string, known: Map<string, { version: string; config: FlowConfig }> | undefined,
): Promise<{ flows: FlowsRead; configs: Map<string, { version: string; config: FlowConfig }>; undecodable: PeerdbSnapshot['undecodable'] }> {
  const peerRows = JSON.parse(head.peers) as [number, string, number][];
  const peers = new Map(peerRows.map(([id, name, type]) => [id, { name, postgres: type === POSTGRES_PEER_TYPE }]));

  // Every flow, one row per mirror (not a history table: no index needed), only the columns the
  // mapping uses; created_at as the server's ISO text (DateStyle ISO, see PEERDB_SESSION_OPTIONS).
  // Rows as arrays: node-pg builds no object per row, a good share of this read's client time
  // (docs/performance.md, "Flows as arrays").
  // The row version (xmin and ctid: any update of the row changes both) stands in for config_proto,
  // which is kilobytes per flow and which PeerDB rewrites without always moving updated_at: the
  // bytes are read only for flows whose row changed since the config was last decoded.
  // In name order: an UPDATE writes a new row version, which a plain scan returns elsewhere, and
  // what is keyed on the list (the tables' flowsKey) would rebuild every mirror's tables after any
  // status change, in that change's own latency (docs/performance.md, "The flows in name order").
  type Flow = [name: string, status: number, workflowId: string | null, cdc: boolean, source: number, destination: number, created: string, version: string, updated: string];
  const { rows: flowRows } = await client.query<Flow>({
    text: `select name, status, workflow_id, coalesce(query_string, '') = '', source_peer, destination_peer, created_at::text,
                  xmin::text || '/' || ctid::text, updated_at::text from flows order by name collate "C"`,
    rowMode: 'array',
  });
  known ??= new Map();
  const configs = new Map<string, { version: string; config: FlowConfig }>();
  const stale: string[] = [];
  for (const [name, , , , , , , version] of flowRows) {
    const k = known.get(name);
    if (k && k.version === version) configs.set(name, k);
    else stale.push(name);
  }
  const undecodable: PeerdbSnapshot['undecodable'] = [];
  if (stale.length > 0) {
    // flows_name_unique: only the changed flows' configs.
    const cdcOf = new Map(flowRows.map((r) => [r[0], r[3]]));
    const { rows } = await client.query<{ name: string; version: string; config: Buffer | null }>(
      `select name, xmin::text || '/' || ctid::text as version, config_proto as config from flows where name = any($1::text[])`,
      [stale],
    );
    for (const r of rows) {
      const config = decodeFlowConfig(r.config, cdcOf.get(r.name) ?? false);
      if (config.undecodable !== null) undecodable.push({ mirror: r.name, reason: config.undecodable });
      configs.set(r.name, { version: r.version, config: config.undecodable === null ? config : { ...NO_CONFIG, undecodable: config.undecodable } });
    }
  }
  const rows: FlowRow[] = flowRows.map(([name, status, workflowId, cdc, s, d, created, , updated]) => {
    const source = peers.get(s);
    return {
      name, status, workflowId, cdc, source: source?.name ?? null, destination: peers.get(d)?.name ?? null,
      sourceIsPostgres: source?.postgres ?? false, createdAt: rfc3339(created), updatedAt: rfc3339(updated), config: configs.get(name)?.config ?? NO_CONFIG,
    };
  });
  return { flows: { key, rows, names: new Set(rows.map((f) => f.name)) }, configs, undecodable };
}

async function readStats(
  client: pg.ClientBase, shape: PeerdbShape, tails: Tails | null, now: string, read: FlowsRead,
  configs: Map<string, { version: string; config: FlowConfig }>, undecodable: PeerdbSnapshot['undecodable'],
): Promise<PeerdbSnapshot> {
  const flows = read.rows;

  let pendingLag: Map<string, number> | null = null;
  if (shape.cdcBatches) {
    // idx_cdc_batches_flow_name_batch_id_open (V53): a partial index holding only batches whose
    // normalize has not ended, a handful per flow however long cdc_batches grows. sync_time (V50)
    // is set with PeerDB's database clock; before V50 the worker-clock start_time stands in.
    const since = shape.cdcBatches.syncTime ? 'coalesce(sync_time, start_time)' : 'start_time';
    const { rows } = await client.query<{ flow_name: string; lag: number }>(
      `select flow_name, greatest(0, extract(epoch from now() - min(${since})))::float8 as lag
         from peerdb_stats.cdc_batches
        where end_time is null
        group by flow_name`,
    );
    pendingLag = new Map(rows.map((r) => [r.flow_name, r.lag]));
  }

  let runs: Awaited<ReturnType<typeof readRuns>> | null = null;
  let flowsKey = '';
  let rowTotals: PeerdbSnapshot['rows'] = null;
  let rowsMemory: RowsMemory | null = null;
  if (shape.rowsSynced) {
    // rowsSynced.ts: incrementally after a leader's first poll, through the indexes it names.
    const previousStatuses = tails?.rows?.statuses;
    ({ totals: rowTotals, memory: rowsMemory } = await readRowsSynced(client, flows, now, tails?.rows ?? null, shape.tables?.namespaced ?? false));
    if (shape.tables) {
      flowsKey = tails?.flows === read && tails.tables ? tails.tables.flowsKey : flowsKeyOf(flows);
      const flowsChanged = tails?.tables?.flowsKey !== flowsKey;
      runs = await readRuns(client, flows, previousStatuses, tails?.rows ? (tails.tables?.runs ?? null) : null, flowsChanged);
    }
  }

  const merged: Tails = {
    ...(tails ?? { slotAfterId: 0, slotHoles: [], slots: new Map(), errorAfterId: 0, errorHoles: [], errors: new Map() }),
    rows: rowsMemory, configs, flows: read,
  };
  if (shape.slotSizes) Object.assign(merged, await readSlots(client, shape, flows, tails));
  // The snapshot children whose errors this poll's read changed; absent: all of them (a whole read).
  let movedChildren: Set<string> | undefined;
  if (shape.flowErrors) {
    const errors = await readErrors(client, shape, read, tails, runs?.children);
    movedChildren = errors.movedChildren;
    Object.assign(merged, { errorAfterId: errors.errorAfterId, errorHoles: errors.errorHoles, errors: errors.errors });
  }
  let tables: PeerdbSnapshot['tables'] = null;
  let truncated: PeerdbSnapshot['truncated'] = [];
  merged.tables = null;
  if (runs && rowsMemory) {
    // With the same flows, and each read naming what it moved, only those mirrors are rebuilt: none
    // on an idle poll of 10^5 tables. A whole read of any source, or other flows, rebuilds all.
    const before = tails?.tables;
    let moved: Set<string> | undefined;
    if (before && before.flowsKey === flowsKey && rowsMemory.movedMirrors && runs.movedMirrors && movedChildren) {
      moved = new Set([...rowsMemory.movedMirrors, ...runs.movedMirrors]);
      for (const child of movedChildren) {
        const run = runs.memory.runs.get(child);
        if (run) moved.add(run.mirror);
      }
    }
    if (before && moved?.size === 0) tables = before.built;
    else {
      const only = before && moved ? { previous: before.built, mirrors: moved } : undefined;
      ({ built: tables, truncated } = buildTables(flows, rowsMemory, runs.memory.runs, merged.errors, only));
    }
    merged.tables = { runs: runs.memory, built: tables, flowsKey };
  }
  return { now, flows, pendingLag, rows: rowTotals, tails: merged, shape, undecodable, tables, truncated };
}

async function readSlots(
  client: pg.ClientBase, shape: PeerdbShape, flows: FlowRow[], tails: Tails | null,
): Promise<Pick<Tails, 'slotAfterId' | 'slotHoles' | 'slots' | 'slotsLooked'>> {
  // What every read of samples below takes of a sample, as a Row.
  const columns = `slot_name as key, id, (slot_size * ${MIB}::bigint)::float8 as bytes, ${UTC_MICROS('updated_at')} as at,
    ${shape.slotWalStatus ? 'wal_status' : 'null::text'} as wal`;
  type Row = { key: string; id: number; bytes: number | null; at: string; wal: string | null };
  const toEntry = (r: Row): [string, SlotSample] => [r.key, { id: r.id, bytes: r.bytes, at: r.at, walStatus: r.wal || null }];
  const wanted = flows.filter((f) => f.cdc && f.sourceIsPostgres).map(slotOf);
  // index_slot_name (V12): the samples of one slot, newest taken per slot. On a leader's first poll
  // the slots without a recent sample; later, only a slot no poll has looked up yet (a mirror new
  // since, or whose config now names another slot): the tail below sees only samples appended after
  // the first poll. The sort key is an expression so that the planner cannot walk
  // index_slot_updated_at backwards instead, hoping to meet the slot soon: for a slot whose samples
  // stopped hours ago (on a first poll, every slot looked up here) that walk reads every newer sample
  // of every other slot, seconds per slot.
  const newest = async (slots: string[]): Promise<Row[]> => {
    if (slots.length === 0) return [];
    const { rows } = await client.query<Row>(
      `select x.* from unnest($1::text[]) as s(slot_name)
        cross join lateral (
          select ${columns} from peerdb_stats.peer_slot_size p
           where p.slot_name = s.slot_name order by updated_at + interval '0 seconds' desc, id desc limit 1) as x`,
      [slots],
    );
    return rows;
  };
  // index_slot_updated_at (V12): the samples of the last few sampling rounds, newest per slot.
  // PeerDB samples every CDC slot about once a minute, so this finds most slots' newest sample in a
  // few rows each; a slot that has a sample in the window has its newest there (a newer one would be
  // in it too). The slots without one (a load running, a slot missing: PeerDB samples none then) are
  // looked up by name below.
  const newestRecent = async (slots: string[]): Promise<Row[]> => {
    if (slots.length === 0) return [];
    // The bound as a value, not a subquery, and no filter by name (the other slots' rows are dropped
    // here): the planner then sees how few rows the range holds and takes the updated_at index,
    // where a list of names made it read every sample of each slot through index_slot_name.
    const { rows: [last] } = await client.query<{ at: string | null }>(`select max(updated_at)::text as at from peerdb_stats.peer_slot_size`);
    if (!last?.at) return [];
    const { rows } = await client.query<Row>(
      `select distinct on (slot_name) ${columns}
         from peerdb_stats.peer_slot_size
        where updated_at >= $1::timestamp - interval '${RECENT_SLOT_MINUTES} minutes'
        order by slot_name, updated_at desc, id desc`,
      [last.at],
    );
    const wanted = new Set(slots);
    return rows.filter((r) => wanted.has(r.key));
  };
  if (tails === null) {
    const rows = await newestRecent(wanted);
    const found = new Set(rows.map((r) => r.key));
    rows.push(...(await newest(wanted.filter((slot) => !found.has(slot)))));
    // peer_slot_size_pkey for where the tail starts.
    const { rows: [tail] } = await client.query<{ top: number; holes: number[] }>(topAndHoles('peerdb_stats.peer_slot_size'));
    return { slotAfterId: tail!.top, slotHoles: tail!.holes, slots: new Map(rows.map(toEntry)), slotsLooked: new Set(wanted) };
  }
  const looked = new Set(tails.slotsLooked ?? []);
  const unseen = wanted.filter((s) => !looked.has(s) && !tails.slots.has(s));
  for (const s of wanted) looked.add(s);
  // peer_slot_size_pkey: only the samples appended since the last poll, and the holes below it.
  const { rows } = await client.query<Row>(
    `select ${columns}
       from peerdb_stats.peer_slot_size where id > $1::int or id = any($2::int[]) order by id`,
    [tails.slotAfterId, tails.slotHoles],
  );
  const top = rows.reduce((max, r) => Math.max(max, r.id), tails.slotAfterId);
  const slotHoles = nextHoles(tails.slotHoles, tails.slotAfterId, rows.map((r) => r.id), top);
  const slots = mergeTail(tails.slots, (await newest(unseen)).map(toEntry));
  return { slotAfterId: top, slotHoles, slots: mergeTail(slots, rows.map(toEntry)), slotsLooked: looked };
}

async function readErrors(
  client: pg.ClientBase,
  shape: PeerdbShape,
  read: FlowsRead,
  tails: Tails | null,
  children: string[] | undefined,
): Promise<Pick<Tails, 'errorAfterId' | 'errorHoles' | 'errors'> & { movedChildren?: Set<string> }> {
  const flows = read.rows;
  type Row = { key: string; id: number; message: string; at: string };
  const toEntry = (r: Row): [string, ErrorRow] => [r.key, { id: r.id, flowName: r.key, message: r.message, at: r.at }];
  if (tails === null) {
    const names = flows.map((f) => f.name);
    // The runs read whole at this poll (tables.ts) named the snapshot children already.
    if (children) names.push(...children);
    else if (shape.qrepRuns) {
      // Snapshot children's flow names, from the runs PeerDB records for them (one row per run,
      // not per batch; no index on parent_mirror_name exists, see docs/peerdb.md, Cost on PeerDB's catalog).
      const { rows } = await client.query<{ flow_name: string }>(
        `select distinct flow_name from peerdb_stats.qrep_runs
          where parent_mirror_name is not null and flow_name <> parent_mirror_name`,
      );
      names.push(...rows.map((r) => r.flow_name));
    }
    // idx_flow_errors_flow_name (V17): one flow's log rows, the newest `error` taken per flow. A
    // lookup per name, children included: one scan for a list of 10^5 names made the planner read
    // the whole table instead.
    const { rows } = await client.query<Row>(
      `select n.flow_name as key, e.id::float8 as id, e.error_message as message, ${UTC_MICROS('e.error_timestamp')} as at
         from unnest($1::text[]) as n(flow_name)
        cross join lateral (
          select id, error_message, error_timestamp from peerdb_stats.flow_errors e
           where e.flow_name = n.flow_name and e.error_type = 'error'
           order by error_timestamp desc, id desc limit 1) as e`,
      [names],
    );
    const { rows: [tail] } = await client.query<{ top: number; holes: number[] }>(topAndHoles('peerdb_stats.flow_errors'));
    return { errorAfterId: tail!.top, errorHoles: tail!.holes, errors: new Map(rows.map(toEntry)) };
  }
  // flow_errors_pkey: only the rows logged since the last poll, and the holes below it.
  const { rows } = await client.query<Row & { type: string }>(
    `select flow_name as key, id::float8 as id, error_message as message, ${UTC_MICROS('error_timestamp')} as at, error_type as type
       from peerdb_stats.flow_errors where id > $1::bigint or id = any($2::bigint[]) order by id`,
    [tails.errorAfterId, tails.errorHoles],
  );
  const top = rows.reduce((max, r) => Math.max(max, r.id), tails.errorAfterId);
  const errorHoles = nextHoles(tails.errorHoles, tails.errorAfterId, rows.map((r) => r.id), top);
  const logged = rows.filter((r) => r.type === 'error');
  // Forget the flow names that are neither a flow now nor a snapshot child of one (dropped mirrors,
  // finished clones of them): without this the map grows with every flow name PeerDB ever logged.
  // Only a new error or a change of the flows can make a name to forget.
  if (logged.length === 0 && tails.flows === read) return { errorAfterId: top, errorHoles, errors: tails.errors, movedChildren: new Set() };
  // A copy either way: the names forgotten below are deleted from it, never from the previous poll's map.
  const errors = logged.length > 0 ? mergeTail(tails.errors, logged.map(toEntry)) : new Map(tails.errors);
  const names = read.names;
  for (const name of errors.keys()) if (!names.has(name) && parentOf(name, names) === undefined) errors.delete(name);
  const movedChildren = new Set(logged.filter((r) => r.key.startsWith(CLONE_PREFIX)).map((r) => r.key));
  return { errorAfterId: top, errorHoles, errors, movedChildren };
}
