/**
 * The full reads behind a /metrics snapshot. A cold cache (or one that must start over) reads in one
 * REPEATABLE READ READ ONLY transaction (see snapshot.ts), so every per-mirror series of a scrape
 * comes from the same catalog snapshot:
 *
 *   readFeedPosition    the snapshot's xmin horizon, where the next change feed starts (feed.ts);
 *   readMirrorVersions  every live mirror's name and row version: cheap to send and to parse, so a
 *                       scrape of 10,000 unchanged mirrors costs little;
 *   readMirrorRows      the rendered columns, only for mirrors whose cached text is out of date
 *                       (or of every mirror, when most are: a cold cache).
 *
 * A warm cache reads the change feed instead (feed.ts), one statement (its own snapshot, no transaction
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
import type { PoolClient } from '../db/pool.js';
import { MIRROR_FIELD_LIST, type MirrorFieldMetricsColumns, type SqlType } from '../catalog/mirrorFields.js';
import { tables } from '../catalog/sql.js';
import { TABLE_FIELDS } from '../catalog/tableFields.js';
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
  /** The mirror's tables by name, read in the same statement as the row (one snapshot); null when it never reported tables. */
  tables: TableSample[] | null;
  /**
   * How many tables the mirror has, as text; null when it never reported tables. All that
   * `peerdb_mirror_tables` prints: with the per-table families denied no table is read and parsed,
   * only counted.
   */
  table_count: string | null;
};

/** The table columns /metrics reads (catalog/tableFields.ts), in the order a TableSample holds them after the name. */
const TABLE_SAMPLE_FIELDS = TABLE_FIELDS.filter((f) => f.metrics);

/**
 * One table as /metrics prints it: its name, then the value of each column /metrics reads
 * (tableSampleIndex says where); numbers as their exact text, timestamps as epoch seconds, null
 * where not reported.
 */
export type TableSample = readonly [table: string, ...values: (string | null)[]];

/** Where a table column's value sits in a TableSample. */
export function tableSampleIndex(column: string): number {
  const at = TABLE_SAMPLE_FIELDS.findIndex((f) => f.column === column);
  if (at < 0) throw new Error(`/metrics reads no table column ${column}`);
  return at + 1;
}

export const VERSION = `xmin::text || '@' || extract(epoch from updated_at)::text`;

export function shardFilter(shard: Shard): string {
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
 * A reported value as the families print it: bigints as their exact text, timestamps as epoch
 * seconds (numeric, as text: inside a JSON document it would otherwise become a float).
 */
function metricsValue(expression: string, sql: SqlType): string {
  if (sql === 'bigint') return `${expression}::text`;
  if (sql === 'timestamptz') return `extract(epoch from ${expression})::text`;
  return expression;
}

const TABLE_SAMPLE_VALUES = TABLE_SAMPLE_FIELDS.map((f) => metricsValue(`mt.${f.column}`, f.sql)).join(', ');

/** What a family may read of a mirror's row (MirrorFamily.reads): its columns, and `tables`. */
export type RowColumn = Exclude<keyof MirrorRow, 'mirror' | 'version'>;

function rowColumn(schema: string, column: RowColumn): string {
  switch (column) {
    case 'status':
    case 'error_class':
      return column;
    case 'status_since':
    case 'observed_at':
      return `extract(epoch from ${column}) as ${column}`;
    case 'transitions_total':
      return 'transitions_total::text as transitions_total';
    case 'tables':
      // A correlated subquery: the tables come from the same statement, so the same snapshot, as
      // the row they are rendered with (the batch writer writes both in one transaction). A mirror
      // that reported none has an empty list; one that never reported tables, none (null).
      return `case when mirrors.tables_reported then coalesce((select json_agg(json_build_array(mt.table_name, ${TABLE_SAMPLE_VALUES})
      order by mt.table_name) from ${tables(schema).mirrorTables} mt where mt.mirror = mirrors.mirror), '[]') end as tables`;
    case 'table_count':
      // The same statement too: a count of the mirror's range of the primary key (index only).
      return `case when mirrors.tables_reported then (select count(*) from ${tables(schema).mirrorTables} mt
      where mt.mirror = mirrors.mirror)::text end as table_count`;
    default: {
      const field = MIRROR_FIELD_LIST.find((f) => f.metrics && f.column === column);
      if (field === undefined) throw new Error(`no /metrics column ${column}`);
      return `${metricsValue(field.column, field.sql)} as ${field.column}`;
    }
  }
}

/**
 * The select list for the families served: the name and version, and only the values those
 * families print (a denied family's column is not read; no per-table family, no tables read).
 * A column not read is undefined in the row, and no family served looks at it.
 */
export function mirrorRowColumns(schema: string, families: readonly { reads: readonly RowColumn[] }[]): string {
  const columns = new Set(families.flatMap((f) => f.reads));
  return [`mirror, ${VERSION} as version`, ...[...columns].map((c) => rowColumn(schema, c))].join(', ');
}

/**
 * The gauge inputs (`columns`: mirrorRowColumns) of the named mirrors (dropped or missing ones are left out), in no particular
 * order; `mirrors` undefined: of every live mirror of the shard.
 */
export async function readMirrorRows(
  client: PoolClient, schema: string, mirrors: readonly string[] | undefined, shard: Shard, columns: string,
): Promise<MirrorRow[]> {
  const where = `dropped_at is null${shardFilter(shard)}`;
  const { rows } = mirrors === undefined
    ? await client.query<MirrorRow>(`select ${columns} from ${tables(schema).mirrors} where ${where}`)
    : await client.query<MirrorRow>(`select ${columns} from ${tables(schema).mirrors} where mirror = any($1::text[]) and ${where}`, [mirrors]);
  return rows;
}
