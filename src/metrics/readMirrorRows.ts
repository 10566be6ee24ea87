/**
 * The reads behind one /metrics snapshot. A cold cache (or one that must start over) reads in one
 * REPEATABLE READ READ ONLY transaction (see snapshot.ts), so every per-mirror series of a scrape
 * comes from the same catalog snapshot:
 *
 *   readFeedPosition    the snapshot's xmin horizon, where the next change feed starts;
 *   readMirrorVersions  every live mirror's name and row version: cheap to send and to parse, so a
 *                       scrape of 10,000 unchanged mirrors costs little;
 *   readMirrorRows      the rendered columns, only for mirrors whose cached text is out of date
 *                       (or of every mirror, when most are: a cold cache).
 *
 * A warm cache reads readMirrorFeed instead, one statement (its own snapshot, no transaction
 * around it): the rows of the shard (live or dropped) whose current version a transaction wrote
 * that may not have been visible to the previous scrape's snapshot, whether any row left the table
 * since (mirror_removals, migration 0005), and this snapshot's horizon. A scrape of 10,000 mirrors
 * of which 100 changed reads about 100 rows, not 10,000 versions.
 *
 * All read only this replica's shard (`shard_hash % n = i`, see shard.ts): the filter is an
 * integer test on a stored column, so a shard's read costs a shard's worth of rows to send and parse.
 *
 * The version is `xmin` (the transaction that wrote the row version) with `updated_at`: any write
 * to a row, by whichever writer, changes it. Timestamps are epoch seconds computed in SQL, so the
 * microseconds survive (node-pg would make a millisecond Date of a timestamptz; a numeric arrives
 * as its exact text).
 */
import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from '../db/pool.js';
import { MIRROR_FIELD_LIST, type MirrorFieldMetricsColumns } from '../catalog/mirrorFields.js';
import { tables } from '../catalog/sql.js';
import type { Shard } from './shard.js';

export interface MirrorVersion {
  mirror: string;
  version: string;
}

/** What the per-mirror families render: the reported values that /metrics reads (catalog/mirrorFields.ts) and these. */
export type MirrorRow = MirrorVersion & MirrorFieldMetricsColumns & {
  status: string;
  /** Unix seconds with six fraction digits, as text. */
  status_since: string;
  observed_at: string;
  transitions_total: string;
  error_class: string | null;
};

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
 * raw xmin in the row's header, so no column is deformed (measured at 10,000 rows: ~0.5 ms, against
 * 4-5 ms for widening every xmin to an xid8 through text, and ~1 ms more to count the live rows,
 * which reads dropped_at far down the row, as the feed did before migration 0005).
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
function feedStatement(schema: string, shard: Shard): { name: string; text: string } {
  const t = tables(schema);
  const text = `with scan as (
       select coalesce(array_agg(ctid), '{}') as changed from ${t.mirrors}
        where age(xmin) <= (select ${FROM_AGE}) or (select ${FROM_AGE}) < 0)
     select pg_snapshot_xmin(pg_current_snapshot())::text as horizon,
       exists (select from ${t.mirrorRemovals} where xid >= $1::text::xid8) as removed, changed.*
     from (select) as this_snapshot left join (
       select ${ROW_COLUMNS}, dropped_at is not null as dropped from ${t.mirrors}
        where ctid = any((select changed from scan)::tid[])${shardFilter(shard)}
     ) as changed on true`;
  return { name: `mirrorstate_feed_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`, text };
}

const feedStatements = new Map<string, { name: string; text: string }>();

/** The change feed since horizon `from`, in one statement: one round trip, and one snapshot. */
export async function readMirrorFeed(pool: Pool, schema: string, from: string, shard: Shard): Promise<MirrorFeed> {
  const key = `${schema}\u0000${shard.index}/${shard.count}`;
  let statement = feedStatements.get(key);
  if (statement === undefined) feedStatements.set(key, (statement = feedStatement(schema, shard)));
  const { rows } = await pool.query<{ horizon: string; removed: boolean } & (MirrorChange | { [K in keyof MirrorChange]: null })>({
    ...statement,
    values: [from],
  });
  const { horizon, removed } = rows[0]!;
  const changes: MirrorChange[] = [];
  for (const row of rows) if (row.mirror !== null) changes.push(row as MirrorChange);
  return { horizon, removed, changes };
}

/** A reported value as the families print it: bigints as their exact text, timestamps as epoch seconds. */
function metricsColumn(f: (typeof MIRROR_FIELD_LIST)[number]): string {
  if (f.sql === 'bigint') return `${f.column}::text as ${f.column}`;
  if (f.sql === 'timestamptz') return `extract(epoch from ${f.column}) as ${f.column}`;
  return f.column;
}

const ROW_COLUMNS = `mirror, ${VERSION} as version, status, ${MIRROR_FIELD_LIST.filter((f) => f.metrics).map(metricsColumn).join(', ')},
  extract(epoch from status_since) as status_since, extract(epoch from observed_at) as observed_at,
  transitions_total::text as transitions_total, error_class`;

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
