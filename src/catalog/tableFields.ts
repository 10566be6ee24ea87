/**
 * A mirror's table as the catalog keeps it (`mirror_tables`, docs/tables.md), declared once: each
 * column, its SQL type, where the update's entry (update.ts `TableEntry`) and the read API's view
 * carry it (the same path in both: `snapshot.partitions` is the entry's and the view's), and
 * whether /metrics reads it. The batch writer's documents, columns and statement (applyBatch.ts), the
 * readers' select list and view (views.ts) and the /metrics per-table read (metrics/readMirrorRows.ts)
 * are derived from this list; a new column is a line here and a migration.
 */
import type { TableEntry } from '../update.js';
import type { SqlType } from './mirrorFields.js';
import { UTC_MICROS } from './sql.js';

/** A table as the read API answers it (docs/http.md); an entry of an update has the same shape, without `updatedAt`. */
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

/** The groups of a view (and of an entry): shown as null when none of their values is known. */
type Group = 'snapshot' | 'error';
/** Where a value sits in an entry and in the view: a top-level field, or a field of a group. */
type ViewPath =
  | 'rowsSynced' | 'lastSyncedAt'
  | { [G in Group]: `${G}.${keyof NonNullable<TableView[G]> & string}` }[Group];

interface TableField {
  readonly column: string;
  readonly sql: SqlType;
  readonly path: ViewPath;
  /** Read by /metrics for its per-table families (metrics/families.ts names them by column). */
  readonly metrics: boolean;
  /** In a view whose group is shown, what an unknown value reads as (the group's type has no null). */
  readonly orElse?: string;
}

export const TABLE_FIELDS: readonly TableField[] = [
  { column: 'rows_synced', sql: 'bigint', path: 'rowsSynced', metrics: true },
  { column: 'last_synced_at', sql: 'timestamptz', path: 'lastSyncedAt', metrics: true },
  { column: 'snapshot_partitions', sql: 'bigint', path: 'snapshot.partitions', metrics: true },
  { column: 'snapshot_partitions_synced', sql: 'bigint', path: 'snapshot.partitionsSynced', metrics: true },
  { column: 'snapshot_rows_synced', sql: 'bigint', path: 'snapshot.rowsSynced', metrics: true },
  { column: 'snapshot_started_at', sql: 'timestamptz', path: 'snapshot.startedAt', metrics: false },
  { column: 'snapshot_finished_at', sql: 'timestamptz', path: 'snapshot.finishedAt', metrics: false },
  { column: 'error_class', sql: 'text', path: 'error.class', metrics: true, orElse: 'unknown' },
  { column: 'error_message', sql: 'text', path: 'error.message', metrics: false, orElse: '' },
];

/** Each field's path split once: its group (none for a top-level field) and its key. */
const PATHS = TABLE_FIELDS.map((f) => {
  const [first, second] = f.path.split('.') as [string, string?];
  return second === undefined ? { group: undefined, key: first } : { group: first as Group, key: second };
});

export const TABLE_COLUMNS = TABLE_FIELDS.map((f) => f.column);

/** The columns with their types, as a json_to_recordset column definition list. */
export const TABLE_RECORD_DEFINITION = TABLE_FIELDS.map((f) => `${f.column} ${f.sql}`).join(', ');

/** Field `i` of TABLE_FIELDS in an entry, by its path (undefined or null: the entry leaves it out). */
function fieldValue(entry: TableEntry, i: number): unknown {
  const from = entry as unknown as Record<string, Record<string, unknown> | null | undefined>;
  const { group, key } = PATHS[i]!;
  return group === undefined ? from[key] : from[group]?.[key];
}

/** One entry as a row of the writer's document: absent values left out (json_to_recordset reads them as null). */
export function tableRow(mirror: string, entry: TableEntry): Record<string, unknown> {
  const row: Record<string, unknown> = { mirror, table_name: entry.table };
  for (let i = 0; i < TABLE_FIELDS.length; i++) row[TABLE_FIELDS[i]!.column] = fieldValue(entry, i) ?? undefined;
  return row;
}

/** The writer's columns' types, in tableColumns' order: the mirror, the table's name, then each field. */
export const TABLE_COLUMN_TYPES: readonly SqlType[] = ['text', 'text', ...TABLE_FIELDS.map((f) => f.sql)];

/** One element of a PostgreSQL array literal: NULL bare, a number as written, anything else quoted. */
function element(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') return String(value);
  const text = value as string;
  return `"${/[\\"]/.test(text) ? text.replace(/[\\"]/g, '\\$&') : text}"`;
}

/**
 * Table sets as the writer's columns (applyBatch.ts, `unnest`): one PostgreSQL array literal per
 * column of TABLE_COLUMN_TYPES, a value an entry leaves out written as NULL. Built here rather
 * than by node-pg, which escapes every element of an array with several regular expressions; a
 * quoted element needs only its backslashes and double quotes escaped, whatever else it holds.
 */
export function tableColumns(sets: Iterable<[string, TableEntry[]]>): string[] {
  const columns: string[][] = TABLE_COLUMN_TYPES.map(() => []);
  for (const [mirror, entries] of sets) {
    const quotedMirror = element(mirror);
    for (const entry of entries) {
      columns[0]!.push(quotedMirror);
      columns[1]!.push(element(entry.table));
      for (let i = 0; i < TABLE_FIELDS.length; i++) columns[i + 2]!.push(element(fieldValue(entry, i)));
    }
  }
  return columns.map((values) => `{${values.join(',')}}`);
}

/** The select list of a reader, timestamps as RFC 3339 UTC text with microseconds. */
export const TABLE_SELECT = ['table_name', ...TABLE_FIELDS.map((f) => (f.sql === 'timestamptz' ? `${UTC_MICROS(f.column)} as ${f.column}` : f.column)),
  `${UTC_MICROS('updated_at')} as updated_at`].join(', ');

/** A row of TABLE_SELECT (node-pg gives a bigint as text, which the view makes a number), keys in the declared order. */
export function toTableView(r: Record<string, unknown>): TableView {
  const values = TABLE_FIELDS.map((f) => {
    const raw = r[f.column];
    return raw === null || raw === undefined ? null : f.sql === 'bigint' ? Number(raw) : raw;
  });
  // A group is shown when any of its values is known; its other values are then null, or orElse.
  const shown = new Set(PATHS.filter((p, i) => p.group !== undefined && values[i] !== null).map((p) => p.group));
  const view: Record<string, unknown> = { table: r.table_name };
  for (let i = 0; i < TABLE_FIELDS.length; i++) {
    const { group, key } = PATHS[i]!;
    if (group === undefined) view[key] = values[i];
    else if (!shown.has(group)) view[group] = null;
    else ((view[group] ??= {}) as Record<string, unknown>)[key] = values[i] ?? TABLE_FIELDS[i]!.orElse ?? null;
  }
  view.updatedAt = r.updated_at;
  return view as unknown as TableView;
}
