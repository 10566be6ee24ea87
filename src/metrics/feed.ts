/**
 * The /metrics change feed: what changed in `mirrors` since the previous snapshot, found by the
 * writing transactions' ids, in one statement.
 */
import { createHash } from 'node:crypto';
import { tables } from '../catalog/sql.js';
import type { Pool, PoolClient } from '../db/pool.js';
import { MIRROR_FAMILIES } from './families.js';
import { mirrorRowColumns, type MirrorRow, shardFilter } from './readMirrorRows.js';
import type { Shard } from './shard.js';

/** A prepared statement's name and text: made once per schema and shard (feedStatement). */
export interface FeedStatement {
  name: string;
  text: string;
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
 * raw xmin in the row's header, so no column is deformed: far cheaper than widening every xmin to
 * an xid8 through text, or counting the live rows, which reads dropped_at far down the row, as the
 * feed did before migration 0005 (docs/performance.md, "The change feed's scan").
 *
 * Rows removed from the table leave no version to find; the statements that remove them leave a
 * row in mirror_removals (migration 0005), whose writer is found by the same horizon argument,
 * compared as xid8 on an index.
 */
const FROM_AGE = `age(($1::text::bigint % 4294967296)::text::xid)`;

/** A snapshot's xmin horizon as a decimal xid8: the next feed reads writers at or above it. */
export async function readFeedPosition(client: PoolClient): Promise<string> {
  const { rows } = await client.query<{ horizon: string }>('select pg_snapshot_xmin(pg_current_snapshot())::text as horizon');
  return rows[0]!.horizon;
}

export interface MirrorChange extends MirrorRow {
  dropped: boolean;
}

export interface MirrorFeed {
  /** This snapshot's horizon: where the next feed starts. */
  horizon: string;
  /**
   * A row left the table (deleted, truncated, renamed) at or above the `from` horizon: the
   * changes cannot say which, so the cache must read every mirror.
   */
  removed: boolean;
  /** Rows of the shard, dropped ones included, whose version's writer is at or above the `from` horizon. */
  changes: MirrorChange[];
}

/**
 * The feed statement for a schema and shard. One pass over the table tests each row's header
 * (xmin) alone and collects the changed rows' addresses (ctid, valid within the statement's
 * snapshot); a TID scan then reads those rows' columns, the shard filter among them, so no
 * unchanged row is deformed. Each row carries the horizon and the removal probe; no change at all
 * still returns them, in a row of nulls. Named (so prepared once per connection) by a hash of its
 * text.
 */
export function feedStatement(schema: string, shard: Shard, columns = mirrorRowColumns(schema, MIRROR_FAMILIES)): FeedStatement {
  const t = tables(schema);
  const text = `with scan as (
       select coalesce(array_agg(ctid), '{}') as changed from ${t.mirrors}
        where age(xmin) <= (select ${FROM_AGE}) or (select ${FROM_AGE}) < 0)
     select pg_snapshot_xmin(pg_current_snapshot())::text as horizon,
       exists (select from ${t.mirrorRemovals} where xid >= $1::text::xid8) as removed, changed.*
     from (select) as this_snapshot left join (
       select ${columns}, dropped_at is not null as dropped from ${t.mirrors}
        where ctid = any((select changed from scan)::tid[])${shardFilter(shard)}
     ) as changed on true`;
  return { name: `mirrorstate_feed_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`, text };
}

/** The change feed since horizon `from`, in one statement (feedStatement's): one round trip, and one snapshot. */
export async function readMirrorFeed(pool: Pool, statement: FeedStatement, from: string): Promise<MirrorFeed> {
  const { rows } = await pool.query<{ horizon: string; removed: boolean } & (MirrorChange | { [K in keyof MirrorChange]: null })>({
    ...statement,
    values: [from],
  });
  const { horizon, removed } = rows[0]!;
  const changes: MirrorChange[] = [];
  for (const row of rows) if (row.mirror !== null) changes.push(row as MirrorChange);
  return { horizon, removed, changes };
}
