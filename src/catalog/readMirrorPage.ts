/**
 * What the status page's front table shows: one page of mirrors and the count of mirrors per
 * status, from one snapshot (the counts always add up to the rows of the same moment).
 *
 * Paging is by keyset on the name (`after` / `before` a mirror name), not OFFSET: a page walks the
 * primary-key index from where the last one stopped and reads `limit + 1` rows, so page 1,000 of a
 * 100,000-mirror fleet costs what page 1 does (OFFSET reads and throws away every row before the
 * page), and a mirror created or dropped between two clicks does not shift every later page. Names
 * order by the column's own collation, the one its primary-key index has, so the walk is an index
 * range scan rather than a sort of the whole table (`collate "C"`, as the JSON API orders, would
 * not use the index unless the database's collation is C).
 *
 * The counts are one aggregate over `mirrors`: one narrow row per mirror, never the journal or the
 * transitions, so it costs a sequential scan of the fleet (a few milliseconds at 10,000 mirrors;
 * see `npm run bench page`). A maintained counter table would be cheaper to read, but every batch
 * would then update the same few rows, serialising the writers on them; not worth it for a page.
 */
import { inTransaction, type Pool } from '../db/pool.js';
import type { Status } from '../update.js';
import { MIRROR_COLUMNS, type MirrorState, SNAPSHOT_BEGIN, toMirrorState } from './views.js';
import { readSparklines, type Sparkline } from './readSparklines.js';
import type { SparklineCache } from './sparklineCache.js';
import type { TimelineWindow } from './readTimelines.js';
import { tables } from './sql.js';

export const DEFAULT_PAGE_MIRRORS = 100;
/** A page is for reading; more rows only cost the daemon memory and the event loop time. */
export const MAX_PAGE_MIRRORS = 500;

export interface MirrorPageQuery {
  /** Only mirrors in this status. */
  status?: Status;
  /** Include dropped mirrors (excluded by default, as in the JSON API). */
  dropped?: boolean;
  /** The page after this name (forwards), or before it (backwards); at most one of them. */
  after?: string;
  before?: string;
  limit: number;
}

export interface StatusCount {
  status: string;
  dropped: boolean;
  count: number;
}

export interface MirrorPage {
  /** Mirrors per (status, dropped), for the whole catalog regardless of the page's filter. */
  counts: StatusCount[];
  /** The page, in name order. */
  mirrors: MirrorState[];
  /** Whether mirrors exist before the first / after the last of this page (within the filter). */
  hasPrevious: boolean;
  hasNext: boolean;
  /** When asked for: each mirror's statuses over the window (absent: no transitions to its end). */
  sparklines?: Map<string, Sparkline>;
  /** Initial-load progress of the page's mirrors in `snapshot` or `resync` that reported partitions: their tables' sums. */
  progress: Map<string, { partitionsSynced: number; partitions: number }>;
}

/** The statuses whose mirrors show initial-load progress in the list. */
export const LOADING_STATUSES: readonly string[] = ['snapshot', 'resync'];

function pageStatements(schema: string) {
  const t = tables(schema);
  const where = `($1::boolean or dropped_at is null) and ($2::text is null or status = $2::text)`;
  // A loading mirror's progress, in the statement of its row (one round trip less a page): the
  // sums of its tables, looked up only for the rows in a loading status.
  const progress = `left join lateral (
      select coalesce(sum(t.snapshot_partitions_synced), 0)::text as progress_synced, sum(t.snapshot_partitions)::text as progress_partitions
        from ${t.mirrorTables} t where t.mirror = m.mirror and m.status = any($5::text[]) having sum(t.snapshot_partitions) > 0) as p on true`;
  return {
    counts: `select status, dropped_at is not null as dropped, count(*)::int as count from ${t.mirrors} group by 1, 2`,
    forwards: `select ${MIRROR_COLUMNS}, p.* from ${t.mirrors} m ${progress}
                where ${where} and ($3::text is null or mirror > $3::text) order by mirror limit $4::int`,
    backwards: `select ${MIRROR_COLUMNS}, p.* from ${t.mirrors} m ${progress}
                 where ${where} and mirror < $3::text order by mirror desc limit $4::int`,
  };
}

/**
 * With `sparklines`, every mirror of the page also gets its statuses over that window, in one more
 * statement for the whole page (readSparklines: index range scans of the page's mirrors whose
 * status changed within the window only, and of those only the ones `sparklineCache` has not kept).
 */
export async function readMirrorPage(
  pool: Pool, schema: string, query: MirrorPageQuery, sparklines?: TimelineWindow, sparklineCache?: SparklineCache,
): Promise<MirrorPage> {
  const sql = pageStatements(schema);
  const backwards = query.before !== undefined;
  const filter = [query.dropped === true, query.status ?? null];
  return inTransaction(pool, SNAPSHOT_BEGIN, async (client) => {
    const counts = await client.query<StatusCount>(sql.counts);
    const { rows } = await client.query(backwards ? sql.backwards : sql.forwards,
      [...filter, (backwards ? query.before : query.after) ?? null, query.limit + 1, LOADING_STATUSES]);
    const more = rows.length > query.limit;
    const page = rows.slice(0, query.limit).map(toMirrorState);
    if (backwards) page.reverse();
    // In the same statement as the rows: a mirror's progress is of the tables its row was written with.
    const progress = new Map<string, { partitionsSynced: number; partitions: number }>();
    for (const r of rows.slice(0, query.limit)) {
      if (r.progress_partitions !== null) progress.set(r.mirror, { partitionsSynced: Number(r.progress_synced), partitions: Number(r.progress_partitions) });
    }
    const timelines = sparklines && page.length > 0 ? await readSparklines(client, schema, page, sparklines, sparklineCache) : undefined;
    return {
      ...(sparklines ? { sparklines: timelines ?? new Map() } : {}),
      counts: counts.rows,
      mirrors: page,
      progress,
      // Walking backwards we came from a page after this one; walking forwards from `after`, one before.
      hasPrevious: backwards ? more : query.after !== undefined,
      hasNext: backwards ? true : more,
    };
  });
}
