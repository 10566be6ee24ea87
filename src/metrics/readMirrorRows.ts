/**
 * The two reads behind one /metrics snapshot, run in one REPEATABLE READ READ ONLY transaction
 * (see snapshot.ts) so every per-mirror series of a scrape comes from the same catalog snapshot:
 *
 *   readMirrorVersions  every live mirror's name and row version: cheap to send and to parse, so a
 *                       scrape of 10,000 unchanged mirrors costs little;
 *   readMirrorRows      the rendered columns, only for mirrors whose cached text is out of date
 *                       (or of every mirror, when most are: a cold cache).
 *
 * Both read only this replica's shard (`shard_hash % n = i`, see shard.ts): the filter is an
 * integer test on a stored column, so a shard's read costs a shard's worth of rows to send and parse.
 *
 * The version is `xmin` (the transaction that wrote the row version) with `updated_at`: any write
 * to a row, by whichever writer, changes it. Timestamps are epoch seconds computed in SQL, so the
 * microseconds survive (node-pg would make a millisecond Date of a timestamptz; a numeric arrives
 * as its exact text).
 */
import type { PoolClient } from '../db.js';
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
