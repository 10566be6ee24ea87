/**
 * How a command fails in front of a person: one line on stderr that says what happened and what to
 * do, and the exit code docs/cli.md lists. Never a stack (a person cannot act on one; with
 * MIRRORSTATE_LOG_LEVEL=debug an unexpected error shows it for whoever debugs), never a password.
 */
import { sqlState } from '../db/sqlstate.js';
import { EmbeddedStartError } from '../embedded.js';
import { WebConfigError } from '../http/webConfig/read.js';
import { redactUrl } from '../log.js';

/** The exit codes, as docs/cli.md lists them. */
export const EXIT = {
  ok: 0,
  /** Failed at run time: a database, the catalog, the port, the embedded server, PeerDB. */
  failed: 1,
  /** Bad usage or configuration: a command, flag or setting, an invalid update, no database to use. */
  usage: 2,
  /** peerdb-sync only: a daemon's poller leads, nothing was done. */
  pollerLeads: 3,
} as const;

/** A failure whose message is already the line a person reads. */
export class CommandFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CommandFailure';
  }
}

/** Where a database's URL comes from, to name in the advice. */
export interface DatabaseSetting {
  url: string;
  /** `DATABASE_URL (--database-url)` */
  setting: string;
}

export const CATALOG_SETTING = 'DATABASE_URL (--database-url)';
export const QUEUE_SETTING = 'MIRRORSTATE_QUEUE_DATABASE_URL (--queue-database-url)';
export const PEERDB_SETTING = 'MIRRORSTATE_PEERDB_URL (--peerdb-url)';

const PROGRAMMING_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError];

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused: is PostgreSQL running there, on that port?',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name could not be resolved just now',
  ETIMEDOUT: 'no answer in time',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'the connection was cut',
};

function where(url: string): string {
  try {
    const u = new URL(url);
    const database = decodeURIComponent(u.pathname.slice(1));
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${database ? `/${database}` : ''}`;
  } catch {
    return redactUrl(url);
  }
}

function userOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).username) || 'the default user';
  } catch {
    return 'the user';
  }
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]?.trim() ?? '';
}

/**
 * The line for a failure to connect to one database, naming it, the setting it comes from, and
 * what to check.
 */
export function connectionFailure(err: unknown, db: DatabaseSetting): CommandFailure {
  const at = where(db.url);
  const code = (err as { code?: unknown } | null)?.code;
  const message = firstLine((err as Error | null)?.message ?? String(err));
  const state = sqlState(err);
  let line: string;
  if (typeof code === 'string' && code in NETWORK_CODES) {
    line = `cannot reach the database at ${at} (${code}: ${NETWORK_CODES[code]}); check ${db.setting}`;
  } else if (/timeout|timed out/i.test(message)) {
    line = `no answer from the database at ${at} in time (${message}); check ${db.setting} and that the server is up`;
  } else if (state === '28P01' || state === '28000') {
    line = `the database at ${at} refused the login of ${JSON.stringify(userOf(db.url))} (${message}); check the user and password in ${db.setting}`;
  } else if (state === '3D000') {
    line = `there is no database ${JSON.stringify(databaseName(db.url))} at ${at}: create it (createdb), or check ${db.setting}`;
  } else if (state === '57P03') {
    line = `the database at ${at} is starting up or shutting down (${message}); try again in a moment`;
  } else if (state === '53300') {
    line = `the database at ${at} takes no more connections (${message}); try again, or raise its max_connections`;
  } else {
    line = `cannot connect to the database at ${at}: ${message}; check ${db.setting}`;
  }
  return new CommandFailure(line, EXIT.failed, { cause: err });
}

function databaseName(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.slice(1)) || userOf(url);
  } catch {
    return '?';
  }
}

export interface FailureContext {
  schema: string;
  bossSchema: string;
  /** Print the stack of an unexpected error too (debug or trace logging). */
  verbose: boolean;
}

/** Any error a command meets, as its line and exit code. */
export function describeFailure(err: unknown, context: FailureContext): { line: string; exitCode: number; stack?: string } {
  if (err instanceof CommandFailure) return { line: err.message, exitCode: err.exitCode };
  // The embedded server's failures say all the operator needs, as one line.
  if (err instanceof EmbeddedStartError) return { line: firstLine(err.message), exitCode: EXIT.failed };
  // A web configuration file that cannot be used: configuration, named by file and key.
  if (err instanceof WebConfigError) return { line: firstLine(err.message), exitCode: EXIT.usage };
  const e = err as (Error & { code?: string; port?: number; address?: string }) | null;
  const message = firstLine(e?.message ?? String(err));
  const state = sqlState(err);
  const migrate = 'run `mirrorstate migrate` against this database (or start the daemon, which migrates at start)';
  if (e?.code === 'EADDRINUSE' || e?.code === 'EACCES' || e?.code === 'EADDRNOTAVAIL') {
    return { line: listenFailure(e.code, e.port, e.address), exitCode: EXIT.failed };
  }
  if (state === '42P01' || state === '3F000') {
    return {
      line: `the catalog (schema "${context.schema}") is missing or incomplete in this database (${message}): ${migrate}`,
      exitCode: EXIT.failed,
    };
  }
  if (/^pg-boss is not installed|^Queue \S+ does not exist/.test(message)) {
    return { line: `the queue (pg-boss schema "${context.bossSchema}") is not set up in this database (${message}): ${migrate}`, exitCode: EXIT.failed };
  }
  if (/^pg-boss database requires migrations/.test(message)) {
    return { line: `the queue's pg-boss schema "${context.bossSchema}" is older than this mirrorstate: ${migrate}`, exitCode: EXIT.failed };
  }
  if (state !== undefined) {
    return { line: `the database refused: ${message} (SQLSTATE ${state})`, exitCode: EXIT.failed };
  }
  if (typeof e?.code === 'string' && e.code in NETWORK_CODES || /^Connection terminated/i.test(message)) {
    return { line: `lost the connection to the database: ${message}; is it still up?`, exitCode: EXIT.failed };
  }
  const stack = context.verbose && e?.stack ? { stack: e.stack } : {};
  // Anything else says what it is in its message (a PeerDB catalog without a column, say). A
  // programming error says nothing a person can act on: it is reported as the bug it is.
  if (PROGRAMMING_ERRORS.some((type) => err instanceof type)) {
    const debug = context.verbose ? '' : ' (MIRRORSTATE_LOG_LEVEL=debug prints its stack)';
    return { line: `unexpected error, a bug: ${message}${debug}`, exitCode: EXIT.failed, ...stack };
  }
  return { line: message, exitCode: EXIT.failed, ...stack };
}

/** The HTTP port or address cannot be had (checked before anything starts, see run.ts). */
export function listenFailure(code: string, port: number | undefined, host: string | undefined): string {
  const at = `${host ?? '0.0.0.0'}:${port ?? '?'}`;
  if (code === 'EADDRINUSE') {
    return `the HTTP port ${port} is already in use (${at}; another mirrorstate daemon?): stop what listens there, or choose another port with MIRRORSTATE_HTTP_PORT / --http-port`;
  }
  if (code === 'EACCES') {
    return `the HTTP port ${port} needs privileges this process lacks (${at}): choose a port above 1023 with MIRRORSTATE_HTTP_PORT / --http-port`;
  }
  return `cannot listen on ${at}: ${host} is no address of this machine; check MIRRORSTATE_HTTP_HOST / --http-host`;
}

/**
 * Replaces every secret the configuration holds (passwords of its URLs, the ingest token) in `line`:
 * a last guard, since a server's or a library's message is not ours to vouch for.
 */
export function scrubSecrets(line: string, secrets: readonly string[]): string {
  let out = line;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('***');
  return out;
}

/** The secrets in a set of URLs and tokens: each password raw and decoded. */
export function secretsOf(values: readonly (string | undefined)[]): string[] {
  const secrets = new Set<string>();
  for (const value of values) {
    if (value === undefined) continue;
    try {
      const url = new URL(value);
      if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new Error('not a URL');
      if (url.password) {
        secrets.add(url.password);
        secrets.add(decodeURIComponent(url.password));
      }
      for (const [key, v] of url.searchParams) if (/pass|secret|token/i.test(key) && v) secrets.add(v);
    } catch {
      secrets.add(value); // a token, or a URL too broken to parse: all of it is secret
    }
  }
  return [...secrets];
}
