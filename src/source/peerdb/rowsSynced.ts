/**
 * Rows synced per mirror (docs/peerdb.md), as PeerDB's own API computes it: the sum of the mirror's
 * `cdc_table_aggregate_counts.total_count` plus `qrep_partitions.rows_synced` of its finished
 * partitions (`parent_mirror_name` = the mirror, `end_time` set). Read incrementally: the leader's
 * first poll reads both tables whole (PeerDB has no index on `qrep_partitions.parent_mirror_name`),
 * keeps every row it needs in memory (`RowsMemory`), and later polls read only what may have moved.
 *
 * How a later poll stays equal to PeerDB's total:
 * - Table counts: PeerDB upserts them (AddCDCBatchTablesForFlow) with `last_updated_at = now()`,
 *   the writing transaction's start, in a short transaction of one upsert per table of the batch.
 *   A row our previous snapshot could not see was committed after it, so its `last_updated_at` is
 *   at least that snapshot's clock minus how long its transaction had been open. Re-reading from
 *   the previous poll's clock minus COUNTS_MARGIN_MS (cdc_table_aggregate_counts_last_updated_idx)
 *   catches every write whose transaction took less than the margin; merging is idempotent (a row
 *   replaces what is remembered for its (flow, table)).
 * - Partitions: PeerDB inserts a load's partitions all at once, unstarted (ids from a sequence),
 *   then per partition sets `start_time` (its worker's clock) and later `rows_synced` and `end_time`
 *   by (run_uuid, partition_uuid). Each poll reads, by primary key, the ids above the highest seen,
 *   the ids started but unfinished at the last poll, and the ids among the last
 *   PARTITION_LOOKBACK_IDS below the highest that it has not seen (inserts committed out of id
 *   order); and by `start_time` the partitions started since the previous poll less the margin.
 * - Anything those rules could miss (a counts transaction open longer than the margin, a row
 *   PeerDB deletes, a finished partition rewritten): each poll also re-reads a slice of both tables
 *   whole and makes memory equal to it (what is remembered in the slice but not answered is
 *   deleted): the table counts of the flows in this poll's bucket (a hash of the name), and one
 *   range of partition ids, both rolling on so that each table is read again whole every
 *   RECONCILE_POLLS polls (10 minutes at the default 5 s interval). Any drift lasts no longer.
 * - A resync keeps the flows row (and its created_at) and may delete the mirror's stats while its
 *   status is resync, setup or snapshot (PeerDB's drop flow workflow). So every poll re-reads whole,
 *   by index, what is remembered of each flow in one of those statuses or whose status changed since
 *   the last poll (WATCHED_STATUSES): its table counts by flow name, and its remembered partitions by
 *   primary key (one not answered is gone). A drop of stats is seen at the next poll, at the cost of a
 *   few index lookups for the few mirrors in those states.
 * - A flow recreated under a name (an older PeerDB's resync, or a drop and create) or gone: that
 *   poll reads both tables whole again, as a first poll does. Such a poll publishes anyway; idle
 *   polls never do it.
 */
import type pg from 'pg';
import { UTC_MICROS } from '../../catalog/sql.js';

/** See the file comment: a counts transaction open longer than this is caught by reconciliation. */
export const COUNTS_MARGIN_MS = 120_000;
/** Partitions inserted by transactions still open at the previous poll can carry lower ids: ids
 * this far below the highest seen that were not seen are looked up again. */
export const PARTITION_LOOKBACK_IDS = 1000;
/** Both tables are re-read whole, slice by slice, once every this many polls. */
export const RECONCILE_POLLS = 120;
const MIN_PARTITION_SLICE = 100;
/** FlowStatus codes during which PeerDB may drop a mirror's stats: setup 4, snapshot 5, resync 9. */
export const WATCHED_STATUSES: ReadonlySet<number> = new Set([4, 5, 9]);

/** The flows whose stats PeerDB may have dropped since the previous poll: in a WATCHED_STATUSES
 * status, or whose status changed since then (`previous`, that poll's statuses). */
export function watchedFlows(flows: readonly { name: string; status: number }[], previous: ReadonlyMap<string, number> | undefined): Set<string> {
  return new Set(flows.filter((f) => WATCHED_STATUSES.has(f.status) || (previous !== undefined && previous.get(f.name) !== f.status)).map((f) => f.name));
}

export interface Counted {
  rows: number;
  /** RFC 3339 UTC, microseconds: last_updated_at or end_time. */
  at: string | null;
}
export interface Partition extends Counted {
  mirror: string;
  /** The flow that ran it: a snapshot child (`clone_…`, tables.ts) or the QRep mirror itself. */
  flow: string;
  /** RFC 3339 UTC, microseconds: when PeerDB started the partition; null until it does. */
  start: string | null;
  finished: boolean;
}

export interface RowsMemory {
  /** PeerDB's clock at the poll that built this memory. */
  readAt: string;
  /** flow name → destination table → its counts row. */
  counts: Map<string, Map<string, Counted>>;
  /** Every partition that has a parent mirror, by id. */
  partitions: Map<number, Partition>;
  partitionTopId: number;
  /** Polls since the whole read: picks this poll's reconciliation bucket of flows. */
  poll: number;
  /** Where the next reconciliation slice of partitions starts. */
  partitionCursor: number;
  /** flow name → created_at at that poll: a flow recreated or gone triggers a whole read. */
  created: Map<string, string>;
  /** flow name → status code at that poll: a change, or a watched status, re-reads the flow. */
  statuses?: Map<string, number>;
  /** Per mirror, the finished partitions' sum (recomputed when a partition changed). */
  partitionTotals: Map<string, Counted>;
  /** The mirrors whose counts or partitions this poll's read changed; absent after a whole read (all of
   * them). Totals and tables (tables.ts) are rebuilt only when some moved. */
  movedMirrors?: Set<string>;
  /** One string per partition flow name, shared by its partitions (partitionOf). */
  flowNames?: Map<string, string>;
  /** The ids of partitions started and not finished: the few PeerDB is running now. */
  running?: Set<number>;
  /** The totals of the poll that built this memory. */
  totals?: RowTotals;
  /** The flows `created` and `statuses` were taken from: the same array at the next poll (the
   * flows table unchanged, readPeerdb.ts) takes them over as they are. */
  flows?: readonly unknown[];
}

export type RowTotals = Map<string, { rows: number; lastSyncAt: string | null }>;

type CountRow = { flow: string; tbl: string; rows: number; at: string };
type PartitionRow = { id: number; mirror: string; flow: string; rows: number; at: string | null; start: string | null };

/** The partition columns every read takes (qrep_partitions; flow_name and start_time for tables.ts). */
const PARTITION_COLUMNS = `id, parent_mirror_name as mirror, flow_name as flow, coalesce(rows_synced, 0)::float8 as rows,
       ${UTC_MICROS('end_time')} as at, ${UTC_MICROS('start_time')} as start`;

/**
 * Reads rows synced for every mirror; `memory` null (or a flow recreated or gone): the whole tables.
 * `memory` is consumed: pass the returned one to the next poll, or null after a failure.
 */
export async function readRowsSynced(
  client: pg.ClientBase,
  flows: readonly { name: string; createdAt: string; status: number }[],
  now: string,
  memory: RowsMemory | null,
  namespaced = false,
): Promise<{ totals: RowTotals; memory: RowsMemory }> {
  const table = namespaced ? NAMESPACED_TABLE : 'destination_table_name';
  const same = memory?.flows === flows;
  const next = memory && (same || !flowsRecreated(flows, memory)) ? await readChanges(client, flows, memory, table) : await readWhole(client, table);
  next.readAt = now;
  if (!same || !memory?.statuses) {
    next.created = new Map(flows.map((f) => [f.name, f.createdAt]));
    next.statuses = new Map(flows.map((f) => [f.name, f.status]));
  } else next.statuses = memory.statuses;
  next.flows = flows;
  // Totals move only with counts or partitions: an idle poll hands on the last ones.
  if (!next.movedMirrors || next.movedMirrors.size > 0 || !next.totals) next.totals = totalsOf(next);
  return { totals: next.totals, memory: next };
}

function flowsRecreated(flows: readonly { name: string; createdAt: string }[], memory: RowsMemory): boolean {
  if (flows.length < memory.created.size) return true;
  let known = 0;
  for (const f of flows) {
    const before = memory.created.get(f.name);
    if (before === undefined) continue;
    if (before !== f.createdAt) return true;
    known++;
  }
  return known !== memory.created.size;
}

/**
 * A table's name where PeerDB records its namespace apart (`destination_table_namespace`, PeerDB
 * PR #4416): `<namespace>.<name>`, unless the name already starts with it. Same-named tables of two
 * namespaces stay two tables (and two counts in the mirror's total).
 */
export const NAMESPACED_TABLE = `case when coalesce(destination_table_namespace, '') = ''
         or starts_with(destination_table_name, destination_table_namespace || '.') then destination_table_name
       else destination_table_namespace || '.' || destination_table_name end`;

async function readWhole(client: pg.ClientBase, table: string): Promise<RowsMemory> {
  // The first poll of a leader: both tables whole (cdc_table_aggregate_counts holds one running
  // total per table of each flow; qrep_partitions one row per partition, no usable index).
  const { rows: counts } = await client.query<CountRow>(
    `select flow_name as flow, ${table} as tbl, total_count::float8 as rows, ${UTC_MICROS('last_updated_at')} as at
       from peerdb_stats.cdc_table_aggregate_counts`,
  );
  const { rows: parts } = await client.query<PartitionRow>(
    `select ${PARTITION_COLUMNS} from peerdb_stats.qrep_partitions where parent_mirror_name is not null`,
  );
  const memory: RowsMemory = {
    readAt: '', poll: 0, counts: new Map(), partitions: new Map(), partitionTopId: 0, partitionCursor: 0,
    created: new Map(), partitionTotals: new Map(), flowNames: new Map(),
  };
  const flowNames = memory.flowNames!;
  for (const r of counts) putCount(memory.counts, r);
  const running = (memory.running = new Set());
  for (const r of parts) {
    const p = partitionOf(r, flowNames);
    memory.partitions.set(r.id, p);
    if (p.start !== null && !p.finished) running.add(r.id);
    memory.partitionTopId = Math.max(memory.partitionTopId, r.id);
  }
  memory.partitionTotals = partitionTotalsOf(memory.partitions);
  return memory;
}

async function readChanges(
  client: pg.ClientBase, flows: readonly { name: string; status: number }[], memory: RowsMemory, table: string,
): Promise<RowsMemory> {
  // Updated in place (copying 10^4–10^5 entries per poll would cost more than the read): a caller
  // whose poll fails drops the memory and starts again from a whole read (poller.ts does).
  const { counts, partitions } = memory;
  let changedPartitions = false;

  // cdc_table_aggregate_counts_last_updated_idx: the rows written since the previous poll (less the
  // margin); cdc_table_aggregate_counts_flow_name_idx: the rows of this poll's reconciliation
  // bucket of flows (a stable hash of the name, so every flow comes round once per RECONCILE_POLLS).
  // Plus the watched flows (a status change, or resync/setup/snapshot): see the file comment.
  const bucket = memory.poll % RECONCILE_POLLS;
  const watched = watchedFlows(flows, memory.statuses);
  const names = flows.filter((f) => bucketOf(f.name) === bucket || watched.has(f.name)).map((f) => f.name);
  const since = new Date(Date.parse(memory.readAt) - COUNTS_MARGIN_MS).toISOString();
  const { rows: countRows } = await client.query<CountRow>(
    `select flow_name as flow, ${table} as tbl, total_count::float8 as rows, ${UTC_MICROS('last_updated_at')} as at
       from peerdb_stats.cdc_table_aggregate_counts
      where last_updated_at >= $1::timestamp or flow_name = any($2::text[])`,
    [since, names],
  );
  // Reconcile: for the bucket's flows, memory becomes exactly the answer.
  const before = new Map(names.map((name) => [name, counts.get(name)]));
  for (const name of names) counts.delete(name);
  const movedMirrors = new Set<string>();
  // A bucket flow's rows were forgotten just above: whether they moved is the comparison after.
  for (const r of countRows) if (putCount(counts, r) && !before.has(r.flow)) movedMirrors.add(r.flow);
  for (const [name, tables] of before) if (!sameCounts(tables, counts.get(name))) movedMirrors.add(name);

  // qrep_partitions_pkey: new ids, the ones started but unfinished at the last poll (PeerDB runs a
  // few at a time), the holes among the last PARTITION_LOOKBACK_IDS ids (inserts committed out of id
  // order fill them), and the next reconciliation slice; idx_qrep_partitions_start_time: the ones
  // started since the previous poll less the margin (PeerDB sets start_time = its worker's now() in
  // the UPDATE that starts a partition, before it can end it). A load's partitions waiting their
  // turn are thus not read again at every poll: a load of 10^5 partitions planned at once costs
  // only the few running.
  // The watched mirrors' remembered partitions join them: one not answered was deleted.
  const running = memory.running ?? new Set<number>();
  const open = [...running];
  if (watched.size > 0) for (const [id, p] of partitions) if (watched.has(p.mirror) && !running.has(id)) open.push(id);
  for (let id = Math.max(0, memory.partitionTopId - PARTITION_LOOKBACK_IDS) + 1; id <= memory.partitionTopId; id++) {
    if (!partitions.has(id)) open.push(id);
  }
  const partSlice = Math.max(MIN_PARTITION_SLICE, Math.ceil(memory.partitionTopId / RECONCILE_POLLS));
  const from = memory.partitionCursor > memory.partitionTopId ? 0 : memory.partitionCursor;
  const newAfter = memory.partitionTopId;
  const { rows: partRows } = await client.query<PartitionRow>(
    `select ${PARTITION_COLUMNS}
       from peerdb_stats.qrep_partitions
      where (id > $1::int or id = any($2::int[]) or (id >= $3::int and id < $4::int) or start_time >= $5::timestamp)
        and parent_mirror_name is not null`,
    [newAfter, open, from, from + partSlice, since],
  );
  const seen = new Set(partRows.map((r) => r.id));
  // A remembered id in a range read whole (open ids and holes, the slice) but not answered is gone;
  // none is remembered above newAfter yet.
  const forget = (id: number) => {
    running.delete(id);
    const p = partitions.get(id);
    if (p === undefined) return;
    partitions.delete(id);
    changedPartitions = true;
    movedMirrors.add(p.mirror);
  };
  for (const id of open) if (!seen.has(id)) forget(id);
  for (let id = from; id < from + partSlice; id++) if (!seen.has(id)) forget(id);
  let top = memory.partitionTopId;
  const flowNames = memory.flowNames ?? new Map<string, string>();
  for (const r of partRows) {
    const p = partitionOf(r, flowNames);
    const before = partitions.get(r.id);
    if (p.start !== null && !p.finished) running.add(r.id);
    else running.delete(r.id);
    if (!before || before.rows !== p.rows || before.at !== p.at || before.mirror !== p.mirror || before.start !== p.start || before.flow !== p.flow) {
      partitions.set(r.id, p);
      changedPartitions = true;
      movedMirrors.add(p.mirror);
      if (before) movedMirrors.add(before.mirror);
    }
    top = Math.max(top, r.id);
  }

  return {
    readAt: '', poll: memory.poll + 1, counts, partitions, partitionTopId: top, partitionCursor: from + partSlice, created: memory.created,
    partitionTotals: changedPartitions ? partitionTotalsOf(partitions) : memory.partitionTotals,
    movedMirrors, flowNames, running, totals: memory.totals,
  };
}

/** FNV-1a of the name, mod RECONCILE_POLLS: which poll re-reads this flow's counts whole. */
export function bucketOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return (h >>> 0) % RECONCILE_POLLS;
}

/** Remembers a counts row; true when it differs from what was remembered. */
function putCount(counts: Map<string, Map<string, Counted>>, r: CountRow): boolean {
  let tables = counts.get(r.flow);
  if (!tables) counts.set(r.flow, (tables = new Map()));
  const before = tables.get(r.tbl);
  tables.set(r.tbl, { rows: r.rows, at: r.at });
  return before === undefined || before.rows !== r.rows || before.at !== r.at;
}

function sameCounts(a: Map<string, Counted> | undefined, b: Map<string, Counted> | undefined): boolean {
  if ((a?.size ?? 0) !== (b?.size ?? 0)) return false;
  for (const [table, c] of a ?? []) {
    const d = b?.get(table);
    if (!d || d.rows !== c.rows || d.at !== c.at) return false;
  }
  return true;
}

/** `flowNames` shares one string per flow name among the partitions that name it (a load has
 * hundreds): memory holds one copy, not one per row read. */
function partitionOf(r: PartitionRow, flowNames: Map<string, string>): Partition {
  const finished = r.at !== null;
  let flow = flowNames.get(r.flow);
  if (flow === undefined) flowNames.set(r.flow, (flow = r.flow));
  return { mirror: r.mirror, flow, start: r.start, rows: finished ? r.rows : 0, at: r.at, finished };
}

function partitionTotalsOf(partitions: Map<number, Partition>): Map<string, Counted> {
  const totals = new Map<string, Counted>();
  for (const p of partitions.values()) {
    if (!p.finished) continue;
    const t = totals.get(p.mirror);
    if (!t) totals.set(p.mirror, { rows: p.rows, at: p.at });
    else {
      t.rows += p.rows;
      if (p.at !== null && (t.at === null || p.at > t.at)) t.at = p.at;
    }
  }
  return totals;
}

function totalsOf(memory: RowsMemory): RowTotals {
  const totals: RowTotals = new Map();
  for (const [mirror, t] of memory.partitionTotals) totals.set(mirror, { rows: t.rows, lastSyncAt: t.at });
  for (const [flow, tables] of memory.counts) {
    let rows = 0;
    let at: string | null = null;
    for (const c of tables.values()) {
      rows += c.rows;
      if (c.at !== null && (at === null || c.at > at)) at = c.at;
    }
    const t = totals.get(flow);
    if (!t) totals.set(flow, { rows, lastSyncAt: at });
    else totals.set(flow, { rows: t.rows + rows, lastSyncAt: t.lastSyncAt === null || (at !== null && at > t.lastSyncAt) ? at : t.lastSyncAt });
  }
  return totals;
}
