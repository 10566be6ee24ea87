/**
 * readMirrorRows: every live mirror's gauge inputs in ONE statement, so one scrape's per-mirror
 * series all come from one snapshot of the catalog (a single statement sees one snapshot even
 * under READ COMMITTED). Only the columns the families render, plus a row version for the text
 * cache; timestamps as epoch seconds computed in SQL so the microseconds survive (node-pg would
 * make a millisecond Date of a timestamptz; a numeric arrives as its exact text).
 */
import type pg from 'pg';
import { tables } from '../catalog/sql.js';

export interface MirrorRow {
  mirror: string;
  /** Changes whenever the row is written: `xmin` (the writing transaction) and `updated_at`. */
  version: string;
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
  error_class: string | null;
}

const sqlBySchema = new Map<string, string>();

function statement(schema: string): string {
  let sql = sqlBySchema.get(schema);
  if (sql === undefined) {
    sql = `select mirror, xmin::text || '@' || extract(epoch from updated_at)::text as version, status,
         flow_type, source_peer, destination_peer, workflow_id,
         extract(epoch from status_since) as status_since, extract(epoch from observed_at) as observed_at,
         transitions_total::text as transitions_total, rows_synced::text as rows_synced, lag_seconds, error_class
       from ${tables(schema).mirrors}
       where dropped_at is null
       order by mirror collate "C"`;
    sqlBySchema.set(schema, sql);
  }
  return sql;
}

/** Live (not dropped) mirrors in byte order of their names. */
export async function readMirrorRows(pool: pg.Pool, schema: string): Promise<MirrorRow[]> {
  const { rows } = await pool.query<MirrorRow>({ text: statement(schema), name: `mirrorstate.readMirrorRows.${schema}` });
  return rows;
}
