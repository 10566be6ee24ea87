/**
 * The two reads behind one /metrics snapshot, run in one REPEATABLE READ READ ONLY transaction
 * (see snapshot.ts) so every per-mirror series of a scrape comes from the same catalog snapshot:
 *
 *   readMirrorVersions  every live mirror's name and row version: cheap to send and to parse, so a
 *                       scrape of 10,000 unchanged mirrors costs little;
 *   readMirrorRows      the rendered columns, only for mirrors whose cached text is out of date
 *                       (or of every mirror, when most are: a cold cache).
 *
 *   readMirrorFeed      the change feed of a warm cache, in one statement (its own snapshot, no
 *                       transaction around it): the rows of the shard (live or dropped) whose
 *                       current version a transaction wrote that may not have been visible to the
 *                       previous scrape's snapshot, so a scrape of 10,000 mirrors of which 100
 *                       changed reads about 100 rows, not 10,000 versions; with this snapshot's
 *                       position (readFeedPosition);
 *   readFeedPosition    a snapshot's xmin horizon (where the next feed starts) and how many live
 *                       mirrors the shard has (a cache that disagrees reads everything instead).
 *
 * All read only this replica's shard (`shard_hash % n = i`, see shard.ts): the filter is an
 * integer test on a stored column, so a shard's read costs a shard's worth of rows to send and parse.
 *
 * The version is `xmin` (the transaction that wrote the row version) with `updated_at`: any write
 * to a row, by whichever writer, changes it. Timestamps are epoch seconds computed in SQL, so the
 * microseconds survive (node-pg would make a millisecond Date of a timestamptz; a numeric arrives
 * as its exact text).
 */
import type { Pool, PoolClient } from '../db.js';
import { tables } from '../catalog/sql.js';
import type { Shard } from './shard.js';

export interface MirrorVersion {
  mirror: string;
  version: string;
}

export interface MirrorRow extends MirrorVersion {
  status: string;
  flow_type: string | null;
  source_peer: string | null;
  destination_peer: string | null;
  workflow_id: string | null;
  /** Unix seconds with six fraction digits, as text. */
  status_since: string;
  observed_at: string;
  transitions_total: string;
  rows_synced: string | null;
  lag_seconds: number | null;
  slot_lag_bytes: string | null;
  error_class: string | null;
}

const VERSION = `xmin::text || '@' || extract(epoch from updated_at)::text`;

function shardFilter(shard: Shard): string {
  // Literal integers (validated by parseShard), so the planner sees constants.
  return shard.count > 1 ? ` and shard_hash % ${Math.trunc(shard.count)} = ${Math.trunc(shard.index)}` : '';
}

/** Live (not dropped) mirrors of the shard with their row versions, in no particular order. */
export async function readMirrorVersions(client: PoolClient, schema: string, shard: Shard): Promise<MirrorVersion[]> {
  const { rows } = await client.query<[string, string]>({
    text: `select mirror, ${VERSION} from ${tables(schema).mirrors} where dropped_at is null${shardFilter(shard)}`,
    rowMode: 'array',
  });
  return rows.map(([mirror, version]) => ({ mirror, version }));
}

/**
 * The change feed's position is a snapshot's xmin horizon: every transaction below it had ended
 * when the snapshot was taken, every one at or above it may not have (in progress, or not started).
 * A watermark of "the newest change seen" would be the classic trap: a transaction that wrote a row
 * before a later one commits after it, and its change sits below the watermark forever. The
 * horizon never passes a transaction that might still commit, so a row version not visible to the
 * previous snapshot was written by a transaction at or above that snapshot's horizon: reading
 * every row whose writer is at or above it finds every change, plus a few rows written by
 * transactions that ended just before (harmlessly rendered again). Subtransactions need no care:
 * their ids are above their parent's.
 *
 * "Written at or above the horizon" is tested with `age()`, which counts 32-bit xids back from one
 * reference (the next xid, read once per transaction) with wraparound: a writer is at or above
 * the horizon when its row's `age(xmin)` is at most the horizon's own age. Both ages come from
 * the same reference, so the test is exact for every row version written in the last 2^31
 * transactions (older ones are frozen or would have forced a wraparound shutdown; a frozen row
 * keeps its raw xmin and is at worst read again needlessly, never missed). A horizon more than
 * 2^31 transactions old has a negative age: then every row is read. It is an integer test on the
 * raw xmin, so it costs about what the count beside it does (measured at 10,000 rows: 1.2 ms,
 * against 4-5 ms for widening every xmin to an xid8 through text).
 */
const FROM_AGE = `age(($1::text::bigint % 4294967296)::text::xid)`;

export interface FeedPosition {
  /** The snapshot's xmin horizon as a decimal xid8: the next feed reads writers at or above it. */
  horizon: string;
  /** Live mirrors of the shard in this snapshot. */
  live: number;
}

function livePositionSql(schema: string, shard: Shard): string {
  return `pg_snapshot_xmin(pg_current_snapshot())::text as horizon,
    (select count(*)::int from ${tables(schema).mirrors} where dropped_at is null${shardFilter(shard)}) as live`;
}

export async function readFeedPosition(client: PoolClient, schema: string, shard: Shard): Promise<FeedPosition> {
  const { rows } = await client.query<FeedPosition>(`select ${livePositionSql(schema, shard)}`);
  return rows[0]!;
}

export interface MirrorChange extends MirrorRow {
  dropped: boolean;
}

export interface MirrorFeed {
  /** This snapshot's position: where the next feed starts, and the live mirrors to check the cache against. */
  position: FeedPosition;
  /** Rows of the shard, dropped ones included, whose version's writer is at or above the `from` horizon. */
  changes: MirrorChange[];
}

/**
 * The change feed since horizon `from` and this snapshot's position, in one statement: one round
 * trip, and one snapshot without a transaction (every part of a statement reads the same
 * snapshot). One pass over the shard's rows counts the live ones and collects the changed ones'
 * row addresses (ctid, valid within the statement's snapshot), whose columns a TID scan then
 * reads: at 100,000 mirrors 31 ms against 39 ms for a count and a feed scanning apart. Each row
 * carries the position; no change at all still returns it, in a row of nulls.
 */
export async function readMirrorFeed(pool: Pool, schema: string, from: string, shard: Shard): Promise<MirrorFeed> {
  const mirrors = tables(schema).mirrors;
  const { rows } = await pool.query<FeedPosition & (MirrorChange | { [K in keyof MirrorChange]: null })>(
    `with scan as (
       select count(*) filter (where dropped_at is null)::int as live,
         coalesce(array_agg(ctid) filter (where age(xmin) <= (select ${FROM_AGE}) or (select ${FROM_AGE}) < 0), '{}') as changed
       from ${mirrors}${shard.count > 1 ? ` where true${shardFilter(shard)}` : ''})
     select pg_snapshot_xmin(pg_current_snapshot())::text as horizon, (select live from scan), changed.*
     from (select) as this_snapshot left join (
       select ${ROW_COLUMNS}, dropped_at is not null as dropped from ${mirrors} where ctid = any((select changed from scan)::tid[])
     ) as changed on true`,
    [from],
  );
  const { horizon, live } = rows[0]!;
  const changes: MirrorChange[] = [];
  for (const row of rows) if (row.mirror !== null) changes.push(row as MirrorChange);
  return { position: { horizon, live }, changes };
}

const ROW_COLUMNS = `mirror, ${VERSION} as version, status, flow_type, source_peer, destination_peer, workflow_id,
  extract(epoch from status_since) as status_since, extract(epoch from observed_at) as observed_at,
  transitions_total::text as transitions_total, rows_synced::text as rows_synced, lag_seconds,
  slot_lag_bytes::text as slot_lag_bytes, error_class`;

/**
 * The gauge inputs of the named mirrors (dropped or missing ones are left out), in no particular
 * order; `mirrors` undefined: of every live mirror of the shard.
 */
export async function readMirrorRows(
  client: PoolClient, schema: string, mirrors: readonly string[] | undefined, shard: Shard,
): Promise<MirrorRow[]> {
  const where = `dropped_at is null${shardFilter(shard)}`;
  const { rows } = mirrors === undefined
    ? await client.query<MirrorRow>(`select ${ROW_COLUMNS} from ${tables(schema).mirrors} where ${where}`)
    : await client.query<MirrorRow>(`select ${ROW_COLUMNS} from ${tables(schema).mirrors} where mirror = any($1::text[]) and ${where}`, [mirrors]);
  return rows;
}
