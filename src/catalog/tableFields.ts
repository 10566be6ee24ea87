/**
 * A mirror's table as the catalog keeps it (`mirror_tables`, docs/tables.md), declared once: each
 * column, its SQL type, and where the update's entry (update.ts `TableEntry`) and the read API's
 * view carry it. The batch writer's document and statement (applyBatch.ts) and the readers' select
 * list and view (views.ts) are derived from this list.
 */
import type { TableEntry } from '../update.js';
import type { SqlType } from './mirrorFields.js';
import { UTC_MICROS } from './sql.js';

interface TableField {
  readonly column: string;
  readonly sql: SqlType;
  /** Its value in an update's entry. */
  readonly of: (entry: TableEntry) => string | number | null | undefined;
}

export const TABLE_FIELDS: readonly TableField[] = [
  { column: 'rows_synced', sql: 'bigint', of: (e) => e.rowsSynced },
  { column: 'last_synced_at', sql: 'timestamptz', of: (e) => e.lastSyncedAt },
  { column: 'snapshot_partitions', sql: 'bigint', of: (e) => e.snapshot?.partitions },
  { column: 'snapshot_partitions_synced', sql: 'bigint', of: (e) => e.snapshot?.partitionsSynced },
  { column: 'snapshot_rows_synced', sql: 'bigint', of: (e) => e.snapshot?.rowsSynced },
  { column: 'snapshot_started_at', sql: 'timestamptz', of: (e) => e.snapshot?.startedAt },
  { column: 'snapshot_finished_at', sql: 'timestamptz', of: (e) => e.snapshot?.finishedAt },
  { column: 'error_class', sql: 'text', of: (e) => e.error?.class },
  { column: 'error_message', sql: 'text', of: (e) => e.error?.message },
];

export const TABLE_COLUMNS = TABLE_FIELDS.map((f) => f.column);

/** The columns with their types, as a json_to_recordset column definition list. */
export const TABLE_RECORD_DEFINITION = TABLE_FIELDS.map((f) => `${f.column} ${f.sql}`).join(', ');

/** One entry as a row of the writer's document: absent values left out (json_to_recordset reads them as null). */
export function tableRow(mirror: string, entry: TableEntry): Record<string, unknown> {
  const row: Record<string, unknown> = { mirror, table_name: entry.table };
  for (const f of TABLE_FIELDS) row[f.column] = f.of(entry) ?? undefined;
  return row;
}

/** The select list of a reader, timestamps as RFC 3339 UTC text with microseconds. */
export const TABLE_SELECT = ['table_name', ...TABLE_FIELDS.map((f) => (f.sql === 'timestamptz' ? `${UTC_MICROS(f.column)} as ${f.column}` : f.column)),
  `${UTC_MICROS('updated_at')} as updated_at`].join(', ');

/** A table as the read API answers it (docs/http.md). */
export interface TableView {
  table: string;
  rowsSynced: number | null;
  lastSyncedAt: string | null;
  snapshot: {
    partitions: number | null;
    partitionsSynced: number | null;
    rowsSynced: number | null;
    startedAt: string | null;
    finishedAt: string | null;
  } | null;
  error: { class: string; message: string } | null;
  updatedAt: string;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/* eslint-disable @typescript-eslint/no-explicit-any -- a row of TABLE_SELECT */
export function toTableView(r: any): TableView {
  const snapshot = [r.snapshot_partitions, r.snapshot_partitions_synced, r.snapshot_rows_synced, r.snapshot_started_at, r.snapshot_finished_at]
    .every((v) => v === null)
    ? null
    : {
        partitions: num(r.snapshot_partitions),
        partitionsSynced: num(r.snapshot_partitions_synced),
        rowsSynced: num(r.snapshot_rows_synced),
        startedAt: r.snapshot_started_at,
        finishedAt: r.snapshot_finished_at,
      };
  return {
    table: r.table_name,
    rowsSynced: num(r.rows_synced),
    lastSyncedAt: r.last_synced_at,
    snapshot,
    error: r.error_class === null && r.error_message === null ? null : { class: r.error_class ?? 'unknown', message: r.error_message ?? '' },
    updatedAt: r.updated_at,
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any */
