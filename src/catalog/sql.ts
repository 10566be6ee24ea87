/** What every catalog statement needs: somewhere to run, and the schema-qualified table names. */
import type { PoolClient } from '../db/pool.js';

/**
 * pg-boss's transaction handle (`IDatabase`) and a pooled client both fit this, so one batch
 * writer serves the claim's transaction and the separate-queue-database path alike.
 */
export interface Executor {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  executeSql(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

export function clientExecutor(client: PoolClient): Executor {
  return { executeSql: (text, values) => client.query(text, values) };
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export interface Tables {
  schema: string;
  mirrors: string;
  transitions: string;
  journal: string;
  /** Rows that left `mirrors` (migration 0005): the /metrics change feed's removal probe. */
  mirrorRemovals: string;
  /** Each mirror's current tables (migration 0008). */
  mirrorTables: string;
  /** Transitions per UTC day across the fleet (migration 0013). */
  transitionsPerDay: string;
}

const cache = new Map<string, Tables>();

export function tables(schema: string): Tables {
  let t = cache.get(schema);
  if (!t) {
    const s = quoteIdent(schema);
    t = { schema: s, mirrors: `${s}.mirrors`, transitions: `${s}.transitions`, journal: `${s}.journal`, mirrorRemovals: `${s}.mirror_removals`, mirrorTables: `${s}.mirror_tables`,
      transitionsPerDay: `${s}.transitions_per_day` };
    cache.set(schema, t);
  }
  return t;
}

/**
 * A timestamptz column as RFC 3339 UTC text with microseconds (`2026-11-21T10:00:00.123456Z`), in any
 * session time zone. node-pg would turn it into a millisecond Date; this keeps the precision every
 * version comparison needs. A `timestamp` column (no zone) that holds UTC, as PeerDB's do, comes out
 * the same in a session whose TimeZone is UTC (the PeerDB read sets it).
 */
export function UTC_MICROS(column: string): string {
  return `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}
