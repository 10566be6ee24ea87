/**
 * The rows the PeerDB source reads, as it holds them, and the rules of reading PeerDB's append-only
 * history tables by id (readPeerdb.ts, tables.ts).
 */
import type { FlowConfig } from './config.js';

/** Snapshot children of a CDC mirror run as flows named `clone_<mirror>_<table>_<run id>`. */
export const CLONE_PREFIX = 'clone_';

/**
 * Rows appended by transactions still open at the previous poll can carry ids below the highest id
 * it saw: ids it did not see. The tails remember those holes among the last TAIL_LOOKBACK_IDS ids
 * and look them up again by primary key on each poll (a row committed later fills its hole; a
 * rolled-back insert's hole stays until it falls out of the window). Re-reading the whole window
 * instead cost a thousand rows per table per poll.
 */
export const TAIL_LOOKBACK_IDS = 1000;

export interface FlowRow {
  name: string;
  status: number;
  workflowId: string | null;
  cdc: boolean;
  source: string | null;
  destination: string | null;
  sourceIsPostgres: boolean;
  /** RFC 3339 UTC, microseconds. */
  createdAt: string;
  /** flows.updated_at, RFC 3339 UTC: PeerDB moves it on every status change (and config edits). */
  updatedAt: string;
  /** What config_proto says (config.ts); NO_CONFIG when it has none or did not decode. */
  config: FlowConfig;
}

export interface ErrorRow {
  id: number;
  flowName: string;
  message: string;
  /** RFC 3339 UTC, microseconds. */
  at: string;
}

/** The parent mirror of a snapshot child's flow name (`clone_<mirror>_<table>_<run>`): the longest
 * mirror name that fits, since `a` and `a_b` may both exist. */
export function parentOf(flowName: string, mirrors: ReadonlySet<string>): string | undefined {
  if (!flowName.startsWith(CLONE_PREFIX)) return undefined;
  const rest = flowName.slice(CLONE_PREFIX.length);
  for (let i = rest.lastIndexOf('_'); i > 0; i = rest.lastIndexOf('_', i - 1)) {
    const candidate = rest.slice(0, i);
    if (mirrors.has(candidate)) return candidate;
  }
  return undefined;
}

/** The highest id of a history table and the holes below it (TAIL_LOOKBACK_IDS), by primary key:
 * where a leader's tail starts. */
export function topAndHoles(table: string): string {
  return `select m::float8 as top, array(select g::float8 from generate_series(greatest(m - ${TAIL_LOOKBACK_IDS} + 1, 1), m) g
                         where not exists (select from ${table} t where t.id = g)) as holes
            from (select coalesce(max(id), 0) as m from ${table}) as x`;
}

/** The holes to look up at the next poll: the old ones and the ids in (after, top] not seen, within
 * TAIL_LOOKBACK_IDS of top. Pure. */
export function nextHoles(holes: readonly number[], after: number, seen: readonly number[], top: number): number[] {
  const found = new Set(seen);
  const floor = top - TAIL_LOOKBACK_IDS;
  const next = holes.filter((id) => id > floor && !found.has(id));
  for (let id = Math.max(after, floor) + 1; id <= top; id++) if (!found.has(id)) next.push(id);
  return next;
}
