/**
 * Environment + flags → one frozen, typed Config. Every setting is an environment variable with a
 * flag of the same meaning; a flag wins over the variable. All bad settings are reported at once,
 * each naming the variable and the flag, so an operator fixes them in one go.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_SESSION_LIMITS, type SessionLimits, tlsProblem } from './db/connection.js';
import { parseFamilyPatterns } from './metrics/familyPatterns.js';
import { AUTO_SHARD, autoShardIndex, NO_SHARDING, parseShard, type Shard } from './metrics/shard.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface Config {
  /** Undefined: start an embedded PostgreSQL under `dataDir`. */
  databaseUrl: string | undefined;
  /** Undefined: the queue lives in the catalog database. */
  queueDatabaseUrl: string | undefined;
  schema: string;
  bossSchema: string;
  httpPort: number;
  httpHost: string;
  batchSize: number;
  concurrency: number;
  journalMaxAgeMs: number;
  journalMaxPerMirror: number;
  transitionsMaxAgeMs: number;
  trimIntervalMs: number;
  ingestToken: string | undefined;
  logLevel: LogLevel;
  dataDir: string;
  poolSize: number;
  maxFutureMs: number;
  /** Undefined: the PeerDB source is off. */
  peerdbUrl: string | undefined;
  peerdbPollIntervalMs: number;
  peerdbNumbersIntervalMs: number;
  /** This replica's share of the per-mirror series (metrics/shard.ts); `auto` resolved at load. */
  metricsShard: Shard;
  /** n for MIRRORSTATE_METRICS_SHARD=auto; undefined otherwise. */
  metricsTotalShards: number | undefined;
  /** Anchored expressions of the `peerdb_*` families served (docs/metrics.md: Allow and deny lists); at most one of the two. */
  metricAllowlist: RegExp[] | undefined;
  metricDenylist: RegExp[] | undefined;
  /** The pod's ordinal for MIRRORSTATE_METRICS_SHARD=auto, when the downward API passes it. */
  podIndex: number | undefined;
  /** Session limits of every connection the daemon opens (connection.ts); 0 = none. */
  dbStatementTimeoutMs: number;
  dbIdleInTransactionTimeoutMs: number;
  dbLockTimeoutMs: number;
  /** statement_timeout while migrations run (they may rewrite a big catalog); 0 = none. */
  migrationStatementTimeoutMs: number;
  /** Undefined: plain HTTP, no basic auth. Else a Prometheus web configuration file (docs/security.md). */
  webConfigFile: string | undefined;
}

type Parser<T> = (raw: string) => T | { error: string };

interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  env: string;
  flag: string;
  description: string;
  /** Shown by --help. */
  defaultText: string;
  default: Config[K];
  parse: Parser<Config[K]>;
  /**
   * A secret: also read from a file named by `<env>_FILE` / `--<flag>-file` (a mounted Kubernetes
   * secret), one trailing newline dropped. Giving both forms is an error.
   */
  secret?: boolean;
}

const DURATION = /^(\d+)(ms|s|m|h|d)?$/;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** `30s`, `15m`, `12h`, `7d`, `250ms`; a bare number is seconds; `0` switches the feature off. */
export function parseDuration(raw: string): number | { error: string } {
  const match = DURATION.exec(raw.trim());
  if (!match) return { error: `must be a duration like 30s, 15m, 12h or 7d, got "${raw}"` };
  const ms = Number(match[1]) * (DURATION_UNIT_MS[match[2] ?? 's'] ?? 1000);
  return Number.isSafeInteger(ms) ? ms : { error: `is too large: "${raw}"` };
}

function integer(min: number, max: number): Parser<number> {
  return (raw) => {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
      return { error: `must be an integer from ${min} to ${max}, got "${raw}"` };
    }
    return value;
  };
}

function positiveDuration(raw: string): number | { error: string } {
  const ms = parseDuration(raw);
  if (typeof ms === 'number' && ms < 1000) return { error: `must be at least 1s, got "${raw}"` };
  return ms;
}

/** Never echoes the URL back: it may hold a password. */
function postgresUrl(raw: string): string | { error: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // WHATWG URLs refuse a port above 65535: say so rather than call it no URL at all. Only
    // digits are echoed (the text after the host's colon could be part of a mistyped password).
    const port = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(?:\[[^\]/]*\]|[^:/?#@]*):([^/?#@]*)(?:[/?#]|$)/i.exec(raw)?.[1];
    if (port !== undefined && /^\d+$/.test(port) && Number(port) > 65535) {
      return { error: `has port ${port}: a port is a number from 1 to 65535` };
    }
    if (port !== undefined && port !== '' && !/^\d+$/.test(port)) {
      return { error: 'has a port that is not a number (a password with / ? # @ or : in it must be percent-encoded)' };
    }
    return { error: 'must be a postgres:// URL: postgres://user:password@host:5432/database (percent-encode special characters in the password)' };
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    return { error: 'must be a postgres:// or postgresql:// URL' };
  }
  if (url.port === '0') return { error: 'has port 0: a port is a number from 1 to 65535' };
  const tls = tlsProblem(raw);
  return tls === undefined ? raw : { error: tls };
}

function identifier(raw: string): string | { error: string } {
  return IDENTIFIER.test(raw) ? raw : { error: `must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), got "${raw}"` };
}

function text(raw: string): string | { error: string } {
  return raw.length > 0 ? raw : { error: 'must not be empty' };
}

function setting<K extends keyof Config>(s: Setting<K>): Setting<K> {
  return s;
}

/** The embedded PostgreSQL's home, relative to the working directory. */
export const DEFAULT_DATA_DIR = '.mirrorstate';

export const SETTINGS: readonly Setting[] = [
  setting({
    key: 'databaseUrl', env: 'DATABASE_URL', flag: 'database-url', default: undefined, defaultText: 'embedded PostgreSQL',
    description: 'catalog (and queue) database', parse: postgresUrl, secret: true,
  }),
  setting({
    key: 'queueDatabaseUrl', env: 'MIRRORSTATE_QUEUE_DATABASE_URL', flag: 'queue-database-url', default: undefined,
    defaultText: 'DATABASE_URL', description: 'queue database, when separate from the catalog', parse: postgresUrl, secret: true,
  }),
  setting({
    key: 'schema', env: 'MIRRORSTATE_SCHEMA', flag: 'schema', default: 'mirrorstate', defaultText: 'mirrorstate',
    description: 'catalog schema', parse: identifier,
  }),
  setting({
    key: 'bossSchema', env: 'MIRRORSTATE_BOSS_SCHEMA', flag: 'boss-schema', default: 'pgboss', defaultText: 'pgboss',
    description: 'pg-boss schema of the queue', parse: identifier,
  }),
  setting({
    key: 'httpPort', env: 'MIRRORSTATE_HTTP_PORT', flag: 'http-port', default: 9477, defaultText: '9477',
    description: 'HTTP port (/metrics, health, API); 0 picks a free one', parse: integer(0, 65535),
  }),
  setting({
    key: 'httpHost', env: 'MIRRORSTATE_HTTP_HOST', flag: 'http-host', default: '0.0.0.0', defaultText: '0.0.0.0',
    description: 'HTTP listen address', parse: text,
  }),
  setting({
    key: 'batchSize', env: 'MIRRORSTATE_BATCH_SIZE', flag: 'batch-size', default: 500, defaultText: '500',
    description: 'jobs fetched per batch', parse: integer(1, 10_000),
  }),
  setting({
    key: 'concurrency', env: 'MIRRORSTATE_CONCURRENCY', flag: 'concurrency', default: 2, defaultText: '2',
    description: 'batches in flight at once', parse: integer(1, 64),
  }),
  setting({
    key: 'journalMaxAgeMs', env: 'MIRRORSTATE_JOURNAL_MAX_AGE', flag: 'journal-max-age', default: 7 * 86_400_000,
    defaultText: '7d', description: 'journal retention by age of observedAt (0 = off)', parse: parseDuration,
  }),
  setting({
    key: 'journalMaxPerMirror', env: 'MIRRORSTATE_JOURNAL_MAX_PER_MIRROR', flag: 'journal-max-per-mirror', default: 1000,
    defaultText: '1000', description: 'journal rows kept per mirror (0 = no limit)', parse: integer(0, 1_000_000_000),
  }),
  setting({
    key: 'transitionsMaxAgeMs', env: 'MIRRORSTATE_TRANSITIONS_MAX_AGE', flag: 'transitions-max-age', default: 0,
    defaultText: '0', description: 'transitions retention by age (0 = keep forever)', parse: parseDuration,
  }),
  setting({
    key: 'trimIntervalMs', env: 'MIRRORSTATE_TRIM_INTERVAL', flag: 'trim-interval', default: 60_000, defaultText: '1m',
    description: 'how often the daemon runs retention', parse: positiveDuration,
  }),
  setting({
    key: 'ingestToken', env: 'MIRRORSTATE_INGEST_TOKEN', flag: 'ingest-token', default: undefined,
    defaultText: 'none: ingest off', description: 'bearer token for POST /api/v1/updates', parse: text, secret: true,
  }),
  setting({
    key: 'logLevel', env: 'MIRRORSTATE_LOG_LEVEL', flag: 'log-level', default: 'info', defaultText: 'info',
    description: `pino level (${LOG_LEVELS.join(', ')})`,
    parse: (raw) => (LOG_LEVELS.includes(raw as LogLevel) ? (raw as LogLevel) : { error: `must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"` }),
  }),
  setting({
    key: 'dataDir', env: 'MIRRORSTATE_DATA_DIR', flag: 'data-dir', default: DEFAULT_DATA_DIR, defaultText: `./${DEFAULT_DATA_DIR}`,
    description: 'where the embedded PostgreSQL keeps its data', parse: text,
  }),
  setting({
    key: 'poolSize', env: 'MIRRORSTATE_POOL_SIZE', flag: 'pool-size', default: 10, defaultText: '10',
    description: 'catalog connections per pool', parse: integer(2, 200),
  }),
  setting({
    key: 'maxFutureMs', env: 'MIRRORSTATE_MAX_FUTURE', flag: 'max-future', default: 5 * 60_000, defaultText: '5m',
    description: 'how far ahead of the daemon clock an observedAt may lie; later ones are dead-lettered', parse: positiveDuration,
  }),
  setting({
    key: 'peerdbUrl', env: 'MIRRORSTATE_PEERDB_URL', flag: 'peerdb-url', default: undefined, defaultText: 'none: off',
    description: "PeerDB's catalog database: turns the PeerDB source on (read only; a SELECT-only role is enough)", parse: postgresUrl, secret: true,
  }),
  setting({
    key: 'peerdbPollIntervalMs', env: 'MIRRORSTATE_PEERDB_POLL_INTERVAL', flag: 'peerdb-poll-interval', default: 5000,
    defaultText: '5s', description: 'how often the PeerDB source polls (at least 1s)', parse: positiveDuration,
  }),
  setting({
    key: 'peerdbNumbersIntervalMs', env: 'MIRRORSTATE_PEERDB_NUMBERS_INTERVAL', flag: 'peerdb-numbers-interval', default: 30_000,
    defaultText: '30s', description: "at most how often the PeerDB source publishes a mirror whose numbers alone changed (rows, lags, slot samples, tables); status and errors go at the next poll", parse: positiveDuration,
  }),
  setting({
    key: 'metricsShard', env: 'MIRRORSTATE_METRICS_SHARD', flag: 'metrics-shard', default: NO_SHARDING, defaultText: '0/1',
    description: 'i/n: export the per-mirror series of shard i of n only; auto: i is the StatefulSet pod\'s ordinal (docs/metrics.md: Sharding)',
    parse: parseShard,
  }),
  setting({
    key: 'metricsTotalShards', env: 'MIRRORSTATE_METRICS_TOTAL_SHARDS', flag: 'metrics-total-shards', default: undefined,
    defaultText: 'none', description: 'n for MIRRORSTATE_METRICS_SHARD=auto: the StatefulSet\'s replicas', parse: integer(1, 1024),
  }),
  setting({
    key: 'metricAllowlist', env: 'MIRRORSTATE_METRIC_ALLOWLIST', flag: 'metric-allowlist', default: undefined, defaultText: 'none: every family',
    description: 'comma-separated regular expressions, each matched against a whole peerdb_* family name: serve only the families matched (docs/metrics.md: Allow and deny lists)',
    parse: parseFamilyPatterns,
  }),
  setting({
    key: 'metricDenylist', env: 'MIRRORSTATE_METRIC_DENYLIST', flag: 'metric-denylist', default: undefined, defaultText: 'none',
    description: 'comma-separated regular expressions, each matched against a whole peerdb_* family name: serve every family but those matched',
    parse: parseFamilyPatterns,
  }),
  setting({
    key: 'podIndex', env: 'MIRRORSTATE_POD_INDEX', flag: 'pod-index', default: undefined,
    defaultText: 'the trailing -<i> of POD_NAME or HOSTNAME',
    description: 'this pod\'s ordinal for MIRRORSTATE_METRICS_SHARD=auto (the apps.kubernetes.io/pod-index label, by the downward API)',
    parse: integer(0, 1023),
  }),
  setting({
    key: 'dbStatementTimeoutMs', env: 'MIRRORSTATE_DB_STATEMENT_TIMEOUT', flag: 'db-statement-timeout', default: DEFAULT_SESSION_LIMITS.statementTimeoutMs,
    defaultText: '5m', description: 'statement_timeout of every database connection the daemon opens (0 = none)', parse: parseDuration,
  }),
  setting({
    key: 'dbIdleInTransactionTimeoutMs', env: 'MIRRORSTATE_DB_IDLE_IN_TRANSACTION_TIMEOUT', flag: 'db-idle-in-transaction-timeout',
    default: DEFAULT_SESSION_LIMITS.idleInTransactionTimeoutMs, defaultText: '1m', parse: parseDuration,
    description: 'idle_in_transaction_session_timeout of every database connection: a transaction left open by a hung process is cut (0 = none)',
  }),
  setting({
    key: 'dbLockTimeoutMs', env: 'MIRRORSTATE_DB_LOCK_TIMEOUT', flag: 'db-lock-timeout', default: DEFAULT_SESSION_LIMITS.lockTimeoutMs, defaultText: '0',
    description: 'lock_timeout of every database connection (0 = none: a lock wait is bounded by the statement timeout)', parse: parseDuration,
  }),
  setting({
    key: 'migrationStatementTimeoutMs', env: 'MIRRORSTATE_MIGRATION_STATEMENT_TIMEOUT', flag: 'migration-statement-timeout',
    default: 0, defaultText: '0', description: 'statement_timeout while catalog migrations run (0 = none)', parse: parseDuration,
  }),
  setting({
    key: 'webConfigFile', env: 'MIRRORSTATE_WEB_CONFIG_FILE', flag: 'web-config-file', default: undefined, defaultText: 'none: plain HTTP',
    description: "TLS, basic auth and headers, in the Prometheus exporter-toolkit's --web.config.file format (docs/security.md)",
    parse: text,
  }),
];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * `flags` holds the command line's values by flag name (without dashes); they win over `env`.
 */
export function loadConfig(env: NodeJS.ProcessEnv, flags: Record<string, string | undefined> = {}): Readonly<Config> {
  const problems: string[] = [];
  const config: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const raw = rawValue(s, env, flags, problems);
    if (raw === undefined) {
      config[s.key] = s.default;
      continue;
    }
    const parsed = s.parse(raw.value);
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed) {
      // Parsers never echo URLs or tokens back, so a problem line is safe to print.
      problems.push(`${raw.source} ${parsed.error}`);
    } else config[s.key] = parsed;
  }
  if (config.schema === config.bossSchema && config.queueDatabaseUrl === undefined) {
    problems.push('MIRRORSTATE_SCHEMA and MIRRORSTATE_BOSS_SCHEMA must differ: the catalog and pg-boss each own their schema');
  }
  if (config.metricAllowlist !== undefined && config.metricDenylist !== undefined) {
    problems.push('MIRRORSTATE_METRIC_ALLOWLIST / --metric-allowlist and MIRRORSTATE_METRIC_DENYLIST / --metric-denylist: give at most one of the two');
  }
  resolveAutoShard(config as Partial<Config>, env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config as unknown as Config);
}

/** The file form of a secret setting. */
export function fileForm(s: Setting): { env: string; flag: string } {
  return { env: `${s.env}_FILE`, flag: `${s.flag}-file` };
}

/** Every flag the settings take, file forms included. */
export function settingFlags(): string[] {
  return SETTINGS.flatMap((s) => (s.secret ? [s.flag, fileForm(s).flag] : [s.flag]));
}

/**
 * The setting's raw text and where it came from (for messages), or undefined when not given. A flag
 * wins over its variable; an empty variable counts as not given. A secret's file form is read here:
 * its problems name the setting and the path, never the content.
 */
function rawValue(
  s: Setting, env: NodeJS.ProcessEnv, flags: Record<string, string | undefined>, problems: string[],
): { value: string; source: string } | undefined {
  const given = (flag: string, variable: string) => flags[flag] ?? (env[variable] === '' ? undefined : env[variable]);
  const direct = given(s.flag, s.env);
  const file = s.secret ? fileForm(s) : undefined;
  const filePath = file ? given(file.flag, file.env) : undefined;
  if (file && direct !== undefined && filePath !== undefined) {
    problems.push(`${s.env} / --${s.flag} and ${file.env} / --${file.flag} are both set: give the secret one way only`);
    return undefined;
  }
  if (file && filePath !== undefined) {
    const source = `${file.env} / --${file.flag} (${filePath})`;
    try {
      return { value: readFileSync(filePath, 'utf8').replace(/\r?\n$/, ''), source };
    } catch (err) {
      problems.push(`${source} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return undefined;
    }
  }
  return direct === undefined ? undefined : { value: direct, source: `${s.env} / --${s.flag}` };
}

/** MIRRORSTATE_METRICS_SHARD=auto → i/n, or a problem naming what is missing. */
function resolveAutoShard(config: Partial<Config>, env: NodeJS.ProcessEnv, problems: string[]): void {
  const total = config.metricsTotalShards;
  if (config.metricsShard !== AUTO_SHARD) {
    if (total !== undefined) {
      problems.push('MIRRORSTATE_METRICS_TOTAL_SHARDS / --metrics-total-shards applies only with MIRRORSTATE_METRICS_SHARD=auto');
    }
    return;
  }
  if (total === undefined) {
    problems.push("MIRRORSTATE_METRICS_SHARD=auto needs MIRRORSTATE_METRICS_TOTAL_SHARDS / --metrics-total-shards (the StatefulSet's replicas)");
    return;
  }
  const own = autoShardIndex(env, config.podIndex);
  if (own === undefined) {
    problems.push(
      `MIRRORSTATE_METRICS_SHARD=auto cannot tell this pod's ordinal: set MIRRORSTATE_POD_INDEX / --pod-index (the apps.kubernetes.io/pod-index label), or POD_NAME to a StatefulSet pod name ending in -<i> (POD_NAME=${JSON.stringify(env.POD_NAME ?? '')}, HOSTNAME=${JSON.stringify(env.HOSTNAME ?? '')})`,
    );
  } else if (own.index >= total) {
    problems.push(`MIRRORSTATE_METRICS_SHARD=auto: ordinal ${own.index} (from ${own.from}) is not below MIRRORSTATE_METRICS_TOTAL_SHARDS=${total}: set it to the StatefulSet's replicas`);
  } else {
    config.metricsShard = { index: own.index, count: total };
  }
}

export function helpText(): string {
  const width = Math.max(...SETTINGS.map((s) => s.flag.length + (s.secret ? 5 : 0))) + 4;
  return SETTINGS.map((s) => {
    const line = `  --${s.flag.padEnd(width)}${s.env}\n  ${''.padEnd(width + 2)}${s.description} (default: ${s.defaultText})`;
    if (!s.secret) return line;
    const file = fileForm(s);
    return `${line}\n  --${file.flag.padEnd(width)}${file.env}\n  ${''.padEnd(width + 2)}the same, read from this file (one trailing newline dropped)`;
  }).join('\n');
}

/** Whether catalog and queue share a database, so a batch and its job completion commit together. */
export function queueSharesCatalog(config: Config): boolean {
  return config.queueDatabaseUrl === undefined || config.queueDatabaseUrl === config.databaseUrl;
}

/** The session limits of every connection the daemon opens (db/connection.ts). */
export function sessionLimits(config: Config): SessionLimits {
  return {
    statementTimeoutMs: config.dbStatementTimeoutMs,
    idleInTransactionTimeoutMs: config.dbIdleInTransactionTimeoutMs,
    lockTimeoutMs: config.dbLockTimeoutMs,
  };
}
