/**
 * A PeerDB mirror's tables (docs/peerdb.md, Tables): per destination table, its CDC rows and last
 * activity (`cdc_table_aggregate_counts`, remembered by rowsSynced.ts), its initial load (the newest
 * snapshot child run of the table in `qrep_runs` and that child's `qrep_partitions`, also remembered
 * by rowsSynced.ts) and its load's error (the child's newest `error` row in `flow_errors`, remembered
 * by readPeerdb.ts's tails).
 *
 * What PeerDB writes, and so when each figure is known:
 * - A CDC mirror's initial load runs one child flow per table, `clone_<mirror>_<source table>_<run>`,
 *   with its own run (`qrep_runs`: flow_name = the child, destination_table, parent_mirror_name =
 *   the mirror). The run row is written when the child starts planning, its partitions all at once,
 *   in one transaction, when planning ends: from then on `partitions` is the whole plan.
 * - A partition gets `start_time` when it starts, `rows_synced` and `end_time` when it ends.
 *   `qrep_runs.start_time` is rewritten at every batch of partitions, so a load's start is its
 *   earliest partition start, and its end the last partition end once all have ended.
 * - A resync loads into `<table>_resync` and swaps it in: its run is reported under the table's own
 *   name, and as the newest run of the table it replaces the previous load's figures.
 *
 * Runs are read like the other history tables: a leader's first poll reads the snapshot children's
 * runs whole (PeerDB has no index on `qrep_runs.parent_mirror_name`), later polls only new ids and
 * the holes below them (`qrep_runs_pkey`), a rolling slice of ids (each id read again every
 * RECONCILE_POLLS polls: a deleted run is forgotten), and, by flow name
 * (`idx_qrep_runs_flow_name`), the runs of mirrors in resync, setup or snapshot, whose stats PeerDB
 * may drop at any poll. Tables are rebuilt only on a poll where something they come from moved,
 * and only those of the mirrors it moved (`movedMirrors` of each read; buildTables' `only`).
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { TableInput } from '../../publish.js';
import { MAX_TABLES_PER_UPDATE } from '../../update.js';
import { classifyError } from './classify.js';
import { CLONE_PREFIX, type ErrorRow, type FlowRow, nextHoles, topAndHoles } from './rows.js';
import { type Partition, RECONCILE_POLLS, type RowsMemory, watchedFlows } from './rowsSynced.js';

/** The suffix of the table a resync loads into before PeerDB swaps it in (cdc_flow.go). */
export const RESYNC_SUFFIX = '_resync';
const MIN_RUN_SLICE = 100;

/** One snapshot child's run: the child flow's newest `qrep_runs` row. */
interface Run {
  id: number;
  mirror: string;
  /** The destination table under its own name (RESYNC_SUFFIX taken off). */
  table: string;
}

export interface RunsMemory {
  /** Snapshot child flow name → its run. */
  runs: Map<string, Run>;
  /** Run id → its child flow name: the rolling slice's ids looked up without a pass over every run. */
  byId: Map<number, string>;
  top: number;
  holes: number[];
  /** Where the next reconciliation slice of ids starts. */
  cursor: number;
}

/** One mirror's tables as published, with what decide.ts needs to apply its resync rule. */
export interface MirrorTables {
  entries: TableInput[];
  /** Per entry, when its error was logged (RFC 3339 UTC), or null. */
  errorAts: (string | null)[];
  digest: string;
}

/** What the source remembers of tables between polls (in readPeerdb.ts's Tails). */
export interface TablesMemory {
  runs: RunsMemory;
  /** CDC mirror → its tables, as last built. */
  built: ReadonlyMap<string, MirrorTables>;
  /** The flows (name, creation, type) the tables were built for: a new or gone flow rebuilds them. */
  flowsKey: string;
}

type RunRow = { id: number; flow: string; tbl: string | null; mirror: string };

/** The table a run loads, under its own name. */
export function tableOfRun(destination: string): string {
  return destination.endsWith(RESYNC_SUFFIX) && destination.length > RESYNC_SUFFIX.length
    ? destination.slice(0, -RESYNC_SUFFIX.length)
    : destination;
}

function putRun(memory: Pick<RunsMemory, 'runs' | 'byId'>, r: RunRow): boolean {
  if (r.tbl === null || r.tbl === '') return false;
  const before = memory.runs.get(r.flow);
  if (before && before.id > r.id) return false;
  const table = tableOfRun(r.tbl);
  if (before && before.id === r.id && before.table === table && before.mirror === r.mirror) return false;
  if (before) memory.byId.delete(before.id);
  memory.runs.set(r.flow, { id: r.id, mirror: r.mirror, table });
  memory.byId.set(r.id, r.flow);
  return true;
}

function forgetRun(memory: Pick<RunsMemory, 'runs' | 'byId'>, flow: string): boolean {
  const run = memory.runs.get(flow);
  if (!run) return false;
  memory.runs.delete(flow);
  memory.byId.delete(run.id);
  return true;
}

const RUN_COLUMNS = `id::float8 as id, flow_name as flow, destination_table as tbl, parent_mirror_name as mirror`;
/** Snapshot children only: a QRep mirror's own runs name the mirror as their parent. */
const CHILD_RUNS = `parent_mirror_name is not null and flow_name <> parent_mirror_name and flow_name like '${CLONE_PREFIX}%'`;

/** Reads the snapshot children's runs; `memory` null: a leader's first poll, the whole table. */
export async function readRuns(
  client: pg.ClientBase,
  flows: readonly Pick<FlowRow, 'name' | 'status'>[],
  previousStatuses: ReadonlyMap<string, number> | undefined,
  memory: RunsMemory | null,
  flowsChanged: boolean,
): Promise<{ memory: RunsMemory; movedMirrors?: Set<string>; children?: string[] }> {
  if (memory === null) {
    const { rows } = await client.query<RunRow>(`select ${RUN_COLUMNS} from peerdb_stats.qrep_runs where ${CHILD_RUNS}`);
    const fresh = { runs: new Map<string, Run>(), byId: new Map<number, string>() };
    for (const r of rows) putRun(fresh, r);
    // qrep_runs_pkey for where the later reads start.
    const { rows: [tail] } = await client.query<{ top: number; holes: number[] }>(topAndHoles('peerdb_stats.qrep_runs'));
    // Every snapshot child's name, for the first read of their errors (readPeerdb.ts).
    return { memory: { ...fresh, top: tail!.top, holes: tail!.holes, cursor: 0 }, children: [...new Set(rows.map((r) => r.flow))] };
  }
  const { runs, byId } = memory;
  const watchedMirrors = watchedFlows(flows, previousStatuses);
  const watchedChildren: string[] = [];
  if (watchedMirrors.size > 0) for (const [flow, r] of runs) if (watchedMirrors.has(r.mirror)) watchedChildren.push(flow);
  const slice = Math.max(MIN_RUN_SLICE, Math.ceil(memory.top / RECONCILE_POLLS));
  const from = memory.cursor > memory.top ? 0 : memory.cursor;
  // qrep_runs_pkey for the ids; idx_qrep_runs_flow_name (hash) for the watched children, one
  // lookup per name.
  const { rows } = await client.query<RunRow>(
    `select ${RUN_COLUMNS} from peerdb_stats.qrep_runs
      where (id > $1::int or id = any($2::int[]) or (id >= $3::int and id < $4::int)) and ${CHILD_RUNS}
     union
     select ${RUN_COLUMNS} from unnest($5::text[]) as w(name)
      cross join lateral (select * from peerdb_stats.qrep_runs r where r.flow_name = w.name) as r
      where ${CHILD_RUNS}`,
    [memory.top, memory.holes, from, from + slice, watchedChildren],
  );
  const movedMirrors = new Set<string>();
  const forget = (flow: string) => {
    const run = runs.get(flow);
    if (run !== undefined && forgetRun(memory, flow)) movedMirrors.add(run.mirror);
  };
  const answered = new Set(rows.map((r) => r.flow));
  // A remembered run whose id was in a range read whole, or whose flow was looked up, but that is
  // not answered: PeerDB deleted it (a resync dropping the mirror's stats, a cancelled table addition).
  for (const flow of watchedChildren) if (!answered.has(flow)) forget(flow);
  for (let id = from; id < from + slice; id++) {
    const flow = byId.get(id);
    if (flow !== undefined && !answered.has(flow)) forget(flow);
  }
  let top = memory.top;
  for (const r of rows) {
    const before = runs.get(r.flow)?.mirror;
    if (putRun(memory, r)) {
      movedMirrors.add(r.mirror);
      if (before !== undefined) movedMirrors.add(before);
    }
    top = Math.max(top, r.id);
  }
  const holes = nextHoles(memory.holes, memory.top, rows.map((r) => r.id), top);
  if (flowsChanged) {
    // Forget the runs of mirrors that no longer exist.
    const names = new Set(flows.map((f) => f.name));
    for (const [flow, r] of runs) if (!names.has(r.mirror)) forget(flow);
  }
  return { memory: { runs, byId, top, holes, cursor: from + slice }, movedMirrors };
}

interface Load {
  partitions: number;
  synced: number;
  rows: number;
  start: string | null;
  end: string | null;
}

function loadsOf(partitions: Iterable<Partition>, only: ReadonlySet<string> | undefined): Map<string, Load> {
  const loads = new Map<string, Load>();
  for (const p of partitions) {
    if (p.flow === p.mirror || (only !== undefined && !only.has(p.mirror))) continue;
    let l = loads.get(p.flow);
    if (!l) loads.set(p.flow, (l = { partitions: 0, synced: 0, rows: 0, start: null, end: null }));
    l.partitions++;
    if (p.start !== null && (l.start === null || p.start < l.start)) l.start = p.start;
    if (p.finished) {
      l.synced++;
      l.rows += p.rows;
      if (p.at !== null && (l.end === null || p.at > l.end)) l.end = p.at;
    }
  }
  return loads;
}

/** A fingerprint of what is published: equal tables, equal digest. */
export function digestOf(entries: readonly TableInput[]): string {
  return createHash('sha1').update(JSON.stringify(entries)).digest('base64url');
}

interface Building {
  entry: TableInput;
  errorAt: string | null;
  /** The id of the run whose load the entry shows. */
  runId: number;
}

/** A rebuild of some mirrors' tables only: the others are taken from `previous` as they are. */
export interface TablesRebuild {
  previous: ReadonlyMap<string, MirrorTables>;
  mirrors: ReadonlySet<string>;
}

/**
 * Every CDC mirror's tables from what the source remembers, or (`only`) those of some mirrors, the
 * rest as they were: a poll that moved one table (a partition finishing) rebuilds its mirror, not
 * every mirror's tables, which a large fleet feels in that change's latency (docs/performance.md,
 * "Only the mirrors that moved rebuilt"). Pure. Tables are sorted by name, and a
 * mirror past MAX_TABLES_PER_UPDATE tables keeps the first that many (`truncated` names them, of
 * the mirrors built).
 */
export function buildTables(
  flows: readonly Pick<FlowRow, 'name' | 'cdc' | 'createdAt'>[],
  rows: Pick<RowsMemory, 'counts' | 'partitions'>,
  runs: ReadonlyMap<string, Run>,
  errors: ReadonlyMap<string, ErrorRow>,
  only?: TablesRebuild,
): { built: Map<string, MirrorTables>; truncated: { mirror: string; tables: number }[] } {
  const cdc = new Map(flows.filter((f) => f.cdc && (only === undefined || only.mirrors.has(f.name))).map((f) => [f.name, f]));
  const byMirror = new Map<string, Map<string, Building>>();
  const tableOf = (mirror: string, table: string): Building => {
    let tables = byMirror.get(mirror);
    if (!tables) byMirror.set(mirror, (tables = new Map()));
    let b = tables.get(table);
    if (!b) tables.set(table, (b = { entry: { table }, errorAt: null, runId: -1 }));
    return b;
  };
  for (const name of cdc.keys()) {
    byMirror.set(name, new Map());
    for (const [table, c] of rows.counts.get(name) ?? []) {
      const b = tableOf(name, table);
      b.entry.rowsSynced = c.rows;
      if (c.at !== null) b.entry.lastSyncedAt = c.at;
    }
  }
  const loads = loadsOf(rows.partitions.values(), only?.mirrors);
  for (const [child, run] of runs) {
    const flow = cdc.get(run.mirror);
    if (!flow) continue;
    const b = tableOf(run.mirror, run.table);
    if (run.id < b.runId) continue;
    b.runId = run.id;
    // A run without partitions is still planning: the table is listed, its load figures unknown.
    const l = loads.get(child);
    if (l) {
      b.entry.snapshot = {
        partitions: l.partitions, partitionsSynced: l.synced, rowsSynced: l.rows,
        ...(l.start === null ? {} : { startedAt: l.start }),
        ...(l.synced === l.partitions && l.end !== null ? { finishedAt: l.end } : {}),
      };
    } else delete b.entry.snapshot;
    // The child's newest error, while newer than its last finished partition (PeerDB retried and got
    // on since otherwise), and never one logged before this flow of the mirror existed.
    const e = errors.get(child);
    const shown = e !== undefined && e.at >= flow.createdAt && (l?.end == null || e.at > l.end);
    if (shown) b.entry.error = { class: classifyError(e.message), message: e.message };
    else delete b.entry.error;
    b.errorAt = shown ? e.at : null;
  }
  const built = new Map<string, MirrorTables>(only?.previous);
  const truncated: { mirror: string; tables: number }[] = [];
  for (const [mirror, tables] of byMirror) {
    let list = [...tables.values()].sort((a, b) => (a.entry.table < b.entry.table ? -1 : a.entry.table > b.entry.table ? 1 : 0));
    if (list.length > MAX_TABLES_PER_UPDATE) {
      truncated.push({ mirror, tables: list.length });
      list = list.slice(0, MAX_TABLES_PER_UPDATE);
    }
    const entries = list.map((b) => b.entry);
    built.set(mirror, { entries, errorAts: list.map((b) => b.errorAt), digest: digestOf(entries) });
  }
  return { built, truncated };
}

/** Which flows the tables were built for: a flow added, gone, recreated or changed type rebuilds them. */
export function flowsKeyOf(flows: readonly Pick<FlowRow, 'name' | 'cdc' | 'createdAt'>[]): string {
  let key = '';
  for (const f of flows) if (f.cdc) key += `${f.name}\u0000${f.createdAt}\u0000`;
  return key;
}
