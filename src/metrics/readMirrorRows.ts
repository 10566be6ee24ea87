/**
 * The two reads behind one /metrics snapshot, run in one REPEATABLE READ READ ONLY transaction
 * (see snapshot.ts) so every per-mirror series of a scrape comes from the same catalog snapshot:
 *
 *   readMirrorVersions  every live mirror's name and row version, in name order: cheap to send
 *                       and to parse, so a scrape of 10,000 unchanged mirrors costs little;
 *   readMirrorRows      the rendered columns, only for mirrors whose cached text is out of date.
 *
 * The version is `xmin` (the transaction that wrote the row version) with `updated_at`: any write
 * to a row, by whichever writer, changes it. Timestamps are epoch seconds computed in SQL, so the
 * microseconds survive (node-pg would make a millisecond Date of a timestamptz; a numeric arrives
 * as its exact text).
 */
import type { PoolClient } from '../db.js';
import { tables } from '../catalog/sql.js';

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

/** Live (not dropped) mirrors with their row versions, in byte order of their names. */
export async function readMirrorVersions(client: PoolClient, schema: string): Promise<MirrorVersion[]> {
  const { rows } = await client.query<[string, string]>({
    text: `select mirror, ${VERSION} from ${tables(schema).mirrors} where dropped_at is null order by mirror collate "C"`,
    rowMode: 'array',
  });
  return rows.map(([mirror, version]) => ({ mirror, version }));
}

/** The gauge inputs of the named mirrors (dropped or missing ones are left out), in no particular order. */
export async function readMirrorRows(client: PoolClient, schema: string, mirrors: readonly string[]): Promise<MirrorRow[]> {
  const { rows } = await client.query<MirrorRow>(
    `select mirror, ${VERSION} as version, status, flow_type, source_peer, destination_peer, workflow_id,
       extract(epoch from status_since) as status_since, extract(epoch from observed_at) as observed_at,
       transitions_total::text as transitions_total, rows_synced::text as rows_synced, lag_seconds,
       slot_lag_bytes::text as slot_lag_bytes, error_class
     from ${tables(schema).mirrors}
     where mirror = any($1::text[]) and dropped_at is null`,
    [mirrors],
  );
  return rows;
}
