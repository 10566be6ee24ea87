/**
 * The values an update reports about its mirror, declared once: the update message's name for each
 * (which the read API answers with too), its column in `mirrors`, its SQL type, how an update is
 * checked for it, what an update that omits it does, and whether /metrics reads it. The message's
 * types (update.ts), its validation, the batch writer's column lists and JSON documents
 * (applyBatch.ts), the read API's view and columns (views.ts), the /metrics reads
 * (metrics/readMirrorRows.ts) and `mirrorstate status MIRROR` (cli/status.ts) are all derived from
 * this table; every SQL text is built once, when the module loads.
 *
 * The rest of the row is the mirror's identity and version (mirror, status, observedAt, seq) and
 * what the writer derives (status_since, error_class and error_message from `error`, dropped_at from
 * `dropped`, transitions_total, the journal metadata): each has rules of its own, spelled out where
 * they are kept (applyBatch.ts).
 *
 * Adding a reported value: what derives from this table needs nothing more. By hand, where a test
 * (test/catalog/mirrorFields.test.ts, test/docs/) fails until it is done:
 * - a line here, and a check kind in update.ts (with a sample in that test) if no FieldCheck fits;
 * - a migration adding its column to `mirrors` (migrations/), and the column in docs/catalog.md;
 * - the producer's `UpdateInput` in publish.ts;
 * - its row in docs/message.md (Fields).
 * By hand, where nothing fails if it is missed:
 * - `mirrorstate publish`'s flag: PUBLISH_FLAGS and updateFromFlags in cli/publish.ts, the usage
 *   line in cli/index.ts (a test then wants it in docs/cli.md);
 * - what an update that omits it does, in docs/message.md (Applying an update);
 * - where it applies: a metric family in metrics/families.ts (tests then want `metrics: true` here
 *   and the family in docs/metrics.md); the status page's hand-picked values
 *   (http/page/mirrorList.ts, mirrorDetail.ts); the few the `mirrorstate status` table shows
 *   (cli/status.ts);
 * - when PeerDB reports it, the PeerDB source, whose record of what PeerDB showed and what it
 *   published is its own and not derived from here (a value PeerDB has no source for needs none of
 *   it): the read (source/peerdb/readPeerdb.ts); `Observation`, observe(), whether a change goes
 *   now or with the numbers (identityChanged, numbersChanged), the update and `PublishedState` in
 *   decide.ts; readPublished and recordPublished in published.ts, with a migration adding the
 *   column to `peerdb_published` (and docs/catalog.md); docs/peerdb.md (Where each field comes
 *   from; What is published, when).
 * See docs/message.md for what each field means.
 */
import { UTC_MICROS } from './sql.js';

export type SqlType = 'text' | 'bigint' | 'float8' | 'timestamptz';

/** How update.ts checks a received value (its rules live there). */
export type FieldCheck = 'name' | 'flowType' | 'count' | 'seconds' | 'timestamp' | 'walStatus';

export interface MirrorField {
  /** Its column in `mirrors`. */
  readonly column: string;
  readonly sql: SqlType;
  readonly check: FieldCheck;
  /**
   * `kept`: an update without it (or with null) leaves the mirror's last value: a producer reports
   * what it knows. `cleared`: it belongs to the update, and an applied update without it clears it.
   */
  readonly omitted: 'kept' | 'cleared';
  /** Read by /metrics for its families (a scrape reads only what it renders). */
  readonly metrics: boolean;
}

/** In the order the read API answers them. */
export const MIRROR_FIELDS = {
  workflowId: { column: 'workflow_id', sql: 'text', check: 'name', omitted: 'kept', metrics: true },
  runId: { column: 'run_id', sql: 'text', check: 'name', omitted: 'kept', metrics: false },
  flowType: { column: 'flow_type', sql: 'text', check: 'flowType', omitted: 'kept', metrics: true },
  source: { column: 'source_peer', sql: 'text', check: 'name', omitted: 'kept', metrics: true },
  destination: { column: 'destination_peer', sql: 'text', check: 'name', omitted: 'kept', metrics: true },
  rowsSynced: { column: 'rows_synced', sql: 'bigint', check: 'count', omitted: 'kept', metrics: true },
  lagSeconds: { column: 'lag_seconds', sql: 'float8', check: 'seconds', omitted: 'kept', metrics: true },
  /** WAL bytes the source's replication slot holds back (CDC from Postgres). */
  slotLagBytes: { column: 'slot_lag_bytes', sql: 'bigint', check: 'count', omitted: 'kept', metrics: true },
  /** When slotLagBytes was measured: a sampled figure can be old, and this says how old. */
  slotLagSampledAt: { column: 'slot_lag_sampled_at', sql: 'timestamptz', check: 'timestamp', omitted: 'kept', metrics: true },
  /** The slot's `wal_status` as PostgreSQL reports it (WAL_STATUSES in update.ts). */
  slotWalStatus: { column: 'slot_wal_status', sql: 'text', check: 'walStatus', omitted: 'kept', metrics: true },
} as const satisfies Record<string, MirrorField>;

type Fields = typeof MIRROR_FIELDS;
export type MirrorFieldName = keyof Fields;

/** A value as JavaScript holds it once parsed: timestamps as canonical RFC 3339 UTC text with microseconds. */
type Value<S extends SqlType> = S extends 'bigint' | 'float8' ? number : string;

/** The reported values by their message (and read API) names, null where unknown. */
export type MirrorFieldValues = { [K in MirrorFieldName]: Value<Fields[K]['sql']> | null };

/** The same values by column, as the batch writer reads and writes the row. */
export type MirrorFieldColumns = { [K in MirrorFieldName as Fields[K]['column']]: Value<Fields[K]['sql']> | null };

/**
 * As /metrics reads them: bigints as text (exact beyond 2^53 and printed as they are), timestamps
 * as epoch seconds (numeric, text with the microseconds).
 */
type MetricsValue<S extends SqlType> = S extends 'float8' ? number : string;
type MetricsFieldName = { [K in MirrorFieldName]: Fields[K]['metrics'] extends true ? K : never }[MirrorFieldName];
export type MirrorFieldMetricsColumns = {
  [K in MetricsFieldName as Fields[K]['column']]: MetricsValue<Fields[K]['sql']> | null;
};

export interface MirrorFieldEntry extends MirrorField {
  readonly name: MirrorFieldName;
}

/** The table as a list, in its order, for the loops that derive from it. */
export const MIRROR_FIELD_LIST: readonly MirrorFieldEntry[] = Object.entries(MIRROR_FIELDS).map(
  ([name, field]) => ({ name: name as MirrorFieldName, ...field }),
);

/** The reported values' columns in a select list, timestamps as RFC 3339 UTC text with microseconds (UTC_MICROS). */
export const MIRROR_FIELD_SELECT = MIRROR_FIELD_LIST.map((f) =>
  f.sql === 'timestamptz' ? `${UTC_MICROS(f.column)} as ${f.column}` : f.column,
).join(', ');
