/**
 * The producer library: validate with the daemon's own parser, then enqueue through pg-boss,
 * optionally inside the caller's transaction (`db`), so a producer can change its own tables and
 * publish the update atomically.
 *
 * All or nothing: if any update is invalid, nothing is enqueued and `InvalidUpdateError` lists
 * every error of every update by its index. The daemon validates again when it drains the queue
 * (its clock decides the future limit), so this check is a courtesy to the producer, not the gate.
 *
 * This module must stay free of side effects on import: it is what `import 'mirrorstate'` loads
 * into a producer's process (in particular it must not import ./db/pool.ts, which changes how node-pg
 * parses int8 for the whole process).
 */
import { type Db, PgBoss } from 'pg-boss';
import { connectionConfig, DEFAULT_SESSION_LIMITS, settleSslMode, tlsProblem } from './db/connection.js';
import { UPDATES_QUEUE } from './queue/boss.js';
import { type FieldError, MAX_UPDATES_PER_MESSAGE, parseUpdate, type Status, type WalStatus } from './update.js';

/** One table of a mirror (docs/tables.md); every field but `table` optional, `null` the same as absent. */
export interface TableInput {
  /** 1–512 characters, no control characters, unique within the update. */
  table: string;
  rowsSynced?: number | null;
  lastSyncedAt?: string | null;
  /** The table's current (or last) initial load. */
  snapshot?: {
    partitions?: number | null;
    /** ≤ partitions. */
    partitionsSynced?: number | null;
    rowsSynced?: number | null;
    startedAt?: string | null;
    finishedAt?: string | null;
  } | null;
  error?: { message: string; class?: string | null } | null;
}

/** Every spelling of a status the message accepts (docs/message.md), or its integer code 0–11. */
export type StatusInput = Status | Uppercase<Status> | `STATUS_${Uppercase<Status>}` | number;

/**
 * One state update as a producer writes it (docs/message.md, version 1). `null` in an optional field
 * means the same as leaving it out. Fields beyond these are allowed at run time (the journal keeps
 * them in the raw payload) but not typed, so a misspelt field name is a compile error here.
 */
export interface UpdateInput {
  /** 1–255 characters, no control characters. */
  mirror: string;
  status: StatusInput;
  /** RFC 3339 with an offset; fractions beyond microseconds are truncated. */
  observedAt: string;
  /** Tie-breaker for the same observedAt; 0 ≤ seq ≤ 2^53−1, default 0. */
  seq?: number | null;
  workflowId?: string | null;
  runId?: string | null;
  /** `[a-z0-9_]{1,32}`, e.g. `cdc`, `qrep`, `xmin`. */
  flowType?: string | null;
  source?: string | null;
  destination?: string | null;
  /** Cumulative rows synced, integer ≥ 0. */
  rowsSynced?: number | null;
  /** Finite, ≥ 0. */
  lagSeconds?: number | null;
  /** WAL bytes the source's replication slot holds back, integer ≥ 0. */
  slotLagBytes?: number | null;
  /** When slotLagBytes was measured, RFC 3339. */
  slotLagSampledAt?: string | null;
  /** The slot's `wal_status`: `reserved`, `extended`, `unreserved` or `lost`. */
  slotWalStatus?: WalStatus | null;
  /**
   * The mirror's complete table set as of observedAt (docs/tables.md): an applied update that lists
   * it replaces the whole set; one without it keeps the set.
   */
  tables?: TableInput[] | null;
  /** Belongs to this update: an applied update without `error` clears the mirror's error. */
  error?: { message: string; class?: string | null } | null;
  /** `true`: the mirror was dropped; its series leave /metrics, its catalog rows stay. */
  dropped?: boolean | null;
}

/** One problem of one update: `index` is the update's position in what was published. */
export interface IndexedFieldError extends FieldError {
  index: number;
}

export interface PublishOptions {
  /**
   * Run the insert through this connection, typically the caller's open transaction: the jobs
   * exist only if that transaction commits. Anything with `executeSql(text, values)` returning
   * `{ rows }` fits, e.g. `{ executeSql: (text, values) => client.query(text, values) }` for a
   * node-pg client inside `begin … commit`.
   */
  db?: Db;
  /** How far ahead of this clock an `observedAt` may lie; the daemon's MIRRORSTATE_MAX_FUTURE (default 5 minutes). */
  maxFutureMs?: number;
}

const ERRORS_IN_MESSAGE = 5;

export class InvalidUpdateError extends Error {
  constructor(readonly errors: IndexedFieldError[]) {
    const shown = errors
      .slice(0, ERRORS_IN_MESSAGE)
      .map((e) => `[${e.index}] ${e.field || 'update'} ${e.message}`)
      .join('; ');
    const more = errors.length > ERRORS_IN_MESSAGE ? ` (and ${errors.length - ERRORS_IN_MESSAGE} more)` : '';
    const invalid = new Set(errors.map((e) => e.index)).size;
    super(`${invalid} invalid update${invalid === 1 ? '' : 's'}, nothing was published: ${shown}${more}`);
    this.name = 'InvalidUpdateError';
  }
}

/** Every error of every update, by index; empty when all are valid. Accepts anything (e.g. parsed JSON). */
export function validateUpdates(updates: readonly unknown[], nowMs: number = Date.now(), maxFutureMs?: number): IndexedFieldError[] {
  return updates.flatMap((update, index) => {
    const result = parseUpdate(update, nowMs, maxFutureMs);
    return result.ok ? [] : result.errors.map((e) => ({ index, ...e }));
  });
}

/**
 * The job data for `updates`, in order: `{ updates: [...] }` of at most 1000 each; a single update
 * on its own is sent bare, as the message format allows.
 */
export function toJobData(updates: readonly object[]): object[] {
  if (updates.length === 1) return [updates[0] as object];
  const jobs: object[] = [];
  for (let i = 0; i < updates.length; i += MAX_UPDATES_PER_MESSAGE) {
    jobs.push({ updates: updates.slice(i, i + MAX_UPDATES_PER_MESSAGE) });
  }
  return jobs;
}

/**
 * Validates all updates (nothing is enqueued if any is invalid: throws `InvalidUpdateError`), then
 * enqueues them on `mirrorstate-updates` as jobs of at most 1000 updates, in one statement (so all
 * jobs or none). Returns the job ids. The queue must exist: the daemon (or `mirrorstate migrate`)
 * creates it.
 *
 * The updates are checked at run time whatever their static type, so data from JSON can be passed
 * with a cast; what is enqueued is each object as given, unknown fields included.
 */
export async function publishUpdates(
  boss: PgBoss,
  updates: readonly UpdateInput[],
  options: PublishOptions = {},
): Promise<string[]> {
  if (!Array.isArray(updates)) throw new TypeError('publishUpdates takes an array of updates');
  const errors = validateUpdates(updates, Date.now(), options.maxFutureMs);
  if (errors.length > 0) throw new InvalidUpdateError(errors);
  if (updates.length === 0) return [];
  const jobs = toJobData(updates).map((data) => ({ data }));
  const ids = await boss.insert(UPDATES_QUEUE, jobs, { returnId: true, ...(options.db ? { db: options.db } : {}) });
  return ids ?? [];
}

export interface ProducerOptions {
  /**
   * The queue database: where the daemon's `mirrorstate-updates` queue lives. Its `sslmode`,
   * `sslrootcert`, `sslcert` and `sslkey` mean what they mean to libpq, as in the daemon's URLs
   * (docs/security.md, Databases over TLS).
   */
  connectionString: string;
  /** pg-boss schema, as the daemon's `MIRRORSTATE_BOSS_SCHEMA`. Default `pgboss`. */
  schema?: string;
  /** Connections in the producer's pool. Default 4. */
  max?: number;
  /** Called with pg-boss's background errors (e.g. a lost idle connection). Default: ignored. */
  onError?: (err: Error) => void;
}

export interface Producer {
  /** The pg-boss instance, for anything beyond publishing. */
  readonly boss: PgBoss;
  publish(updates: readonly UpdateInput[], options?: PublishOptions): Promise<string[]>;
  /** Closes the pool. Idempotent. */
  stop(): Promise<void>;
}

/** The daemon's configuration check of a URL's TLS parameters (never echoing the URL). */
function refuseBadTls(connectionString: string): void {
  const problem = tlsProblem(connectionString);
  if (problem !== undefined) throw new Error(`the producer's connectionString ${problem}`);
}

/**
 * A started pg-boss instance for publishing only: no workers, no LISTEN connection, no supervisor
 * or scheduler, and it never installs or migrates pg-boss's schema (the daemon owns that).
 *
 * The URL becomes node-pg's settings as every daemon and CLI connection's does (db/connection.ts):
 * TLS by libpq's rules, and the default session limits of MIRRORSTATE_DB_*_TIMEOUT, which bound a
 * stuck insert without ever meeting a normal one. Throws when the TLS parameters are wrong or a
 * certificate cannot be read. `allow` and `prefer` need a probe connection to settle, which only
 * createProducer makes; given here unsettled they mean `require`.
 */
export function createProducerBoss(options: ProducerOptions): PgBoss {
  refuseBadTls(options.connectionString);
  const boss = new PgBoss({
    ...connectionConfig(options.connectionString, DEFAULT_SESSION_LIMITS),
    schema: options.schema ?? 'pgboss',
    max: options.max ?? 4,
    application_name: 'mirrorstate-producer',
    useListenNotify: false,
    supervise: false,
    schedule: false,
    migrate: false,
    createSchema: false,
  });
  // pg-boss rethrows an unhandled 'error' event; a producer's process must not die of it.
  boss.on('error', (err: Error) => options.onError?.(err));
  return boss;
}

/**
 * `const producer = await createProducer({ connectionString })`, then `producer.publish([...])`.
 * An `sslmode` of `allow` or `prefer` is settled first, with one probe connection, as the daemon does.
 */
export async function createProducer(options: ProducerOptions | string): Promise<Producer> {
  const given = typeof options === 'string' ? { connectionString: options } : options;
  refuseBadTls(given.connectionString); // before the probe that settles allow and prefer
  const boss = createProducerBoss({ ...given, connectionString: await settleSslMode(given.connectionString) });
  await boss.start();
  let stopping: Promise<void> | undefined;
  return {
    boss,
    publish: (updates, publishOptions) => publishUpdates(boss, updates, publishOptions),
    stop() {
      stopping ??= boss.stop({ graceful: false, timeout: 1000 });
      return stopping;
    },
  };
}
