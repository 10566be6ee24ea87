/**
 * The one place a database URL becomes node-pg's connection settings: every connection the daemon
 * opens (catalog pool, pg-boss, the metrics' listening connection and snapshot pool, the PeerDB
 * source and its leader lock, the CLI), and the producer library's, goes through `connectionConfig`.
 *
 * TLS follows libpq (docs/security.md), not node-pg, which reads `sslmode=require` as verify-full:
 *
 *   sslmode       TLS    server certificate checked
 *   disable       no     -
 *   allow         if the server insists (settled at start by settleSslMode)
 *   prefer        if the server offers it (settled at start by settleSslMode)
 *   require       yes    no; with sslrootcert, chained to that CA (verify-ca), as libpq does
 *   verify-ca     yes    chained to sslrootcert
 *   verify-full   yes    chained to sslrootcert (or the system's CAs) and naming the host
 *
 * `sslrootcert=system` means the system's CAs and defaults sslmode to verify-full (libpq 16).
 * Without `sslmode` in the URL, PGSSLMODE applies, else no TLS (node-pg's default, kept: libpq's
 * `prefer` would open a probe connection per URL). PGSSLROOTCERT, PGSSLCERT and PGSSLKEY stand in
 * for the URL parameters, as in libpq.
 *
 * Session limits (statement, idle-in-transaction and lock timeouts) go out as startup parameters,
 * so each bounds every statement from the connection's first.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** URL parameters this module reads and node-pg must not see (it would apply its own meaning). */
const TLS_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'ssl', 'uselibpqcompat'] as const;

/** 0 = not set: the server's (or the role's) own setting applies. */
export interface SessionLimits {
  statementTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
  lockTimeoutMs: number;
}

export const NO_SESSION_LIMITS: SessionLimits = { statementTimeoutMs: 0, idleInTransactionTimeoutMs: 0, lockTimeoutMs: 0 };

/**
 * The defaults of MIRRORSTATE_DB_*_TIMEOUT: far above any normal batch, trim or read, so only a
 * stuck statement or a transaction left open by a hung process meets them.
 */
export const DEFAULT_SESSION_LIMITS: SessionLimits = { statementTimeoutMs: 5 * 60_000, idleInTransactionTimeoutMs: 60_000, lockTimeoutMs: 0 };

interface TlsSettings {
  mode: SslMode | undefined;
  rootcert: string | undefined;
  cert: string | undefined;
  key: string | undefined;
  password: string | undefined;
}

function tlsSettings(url: URL, env: NodeJS.ProcessEnv): TlsSettings {
  const param = (name: string, variable: string) => url.searchParams.get(name) ?? (env[variable] || undefined);
  const rootcert = param('sslrootcert', 'PGSSLROOTCERT');
  let mode = param('sslmode', 'PGSSLMODE') as SslMode | undefined;
  if (mode === undefined && rootcert === 'system') mode = 'verify-full';
  return { mode, rootcert, cert: param('sslcert', 'PGSSLCERT'), key: param('sslkey', 'PGSSLKEY'), password: url.searchParams.get('sslpassword') ?? undefined };
}

/**
 * What is wrong with the URL's TLS parameters, for the configuration check at start; undefined when
 * nothing is. Never echoes the URL.
 */
export function tlsProblem(raw: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined; // the URL check reports it
  }
  const tls = tlsSettings(url, env);
  if (tls.mode !== undefined && !SSL_MODES.includes(tls.mode)) {
    return `has sslmode "${tls.mode}": use one of ${SSL_MODES.join(', ')}`;
  }
  if (tls.mode === 'verify-ca' && tls.rootcert === undefined) {
    return 'has sslmode=verify-ca without sslrootcert: name the CA that signs the server certificate';
  }
  if (tls.rootcert === 'system' && tls.mode !== 'verify-full') {
    return `has sslrootcert=system with sslmode=${tls.mode}: the system's CAs are only meaningful with verify-full`;
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) return 'needs both sslcert and sslkey for a client certificate';
  return undefined;
}

function readPemFile(parameter: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the database URL's ${parameter} (${file}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      cause: err,
    });
  }
}

/** node-pg's `ssl` for a URL: false, or the options of tls.connect. */
export function tlsOptions(raw: string, env: NodeJS.ProcessEnv = process.env): false | ConnectionOptions {
  const tls = tlsSettings(new URL(raw), env);
  if (tls.mode === undefined || tls.mode === 'disable') return false;
  const options: ConnectionOptions = {};
  if (tls.cert !== undefined && tls.key !== undefined) {
    options.cert = readPemFile('sslcert', tls.cert);
    options.key = readPemFile('sslkey', tls.key);
    if (tls.password !== undefined) options.passphrase = tls.password;
  }
  const ca = tls.rootcert === undefined || tls.rootcert === 'system' ? undefined : readPemFile('sslrootcert', tls.rootcert);
  if (ca !== undefined) options.ca = ca;
  if (tls.mode === 'verify-full') return options; // Node's default: the chain and the host name
  if (ca === undefined) return { ...options, rejectUnauthorized: false }; // allow, prefer, require: encrypt only
  // verify-ca, and require/prefer/allow given a root certificate (as libpq): the chain, not the name.
  return { ...options, checkServerIdentity: () => undefined };
}

/** The URL without the TLS parameters, which connectionConfig hands to node-pg separately. */
function withoutTlsParameters(raw: string): string {
  const url = new URL(raw);
  if (!TLS_PARAMETERS.some((name) => url.searchParams.has(name))) return raw;
  for (const name of TLS_PARAMETERS) url.searchParams.delete(name);
  return url.toString();
}

/**
 * node-pg's settings for a URL: TLS by libpq's rules and the session limits. Throws, naming the
 * parameter and the file, when a certificate or key cannot be read.
 */
export function connectionConfig(raw: string, limits: SessionLimits, env: NodeJS.ProcessEnv = process.env): pg.ClientConfig {
  const config: pg.ClientConfig = { connectionString: withoutTlsParameters(raw), ssl: tlsOptions(raw, env) };
  if (limits.statementTimeoutMs > 0) config.statement_timeout = limits.statementTimeoutMs;
  if (limits.idleInTransactionTimeoutMs > 0) config.idle_in_transaction_session_timeout = limits.idleInTransactionTimeoutMs;
  if (limits.lockTimeoutMs > 0) config.lock_timeout = limits.lockTimeoutMs;
  return config;
}

/** node-pg's message when a server answers the TLS request with "no". */
const NO_TLS_MESSAGE = 'The server does not support SSL connections';

/**
 * `allow` and `prefer` decide per connection in libpq; node-pg cannot fall back within one
 * connection, so one probe at start settles them, and the URL carries the answer (`require` or
 * `disable`) from then on. prefer: TLS unless the server refuses it. allow: plain unless the server
 * refuses that (pg_hba's `hostssl`). Other modes come back unchanged.
 */
export async function settleSslMode(raw: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const url = new URL(raw);
  const { mode } = tlsSettings(url, env);
  if (mode !== 'allow' && mode !== 'prefer') return raw;
  const attempt = async (ssl: false | ConnectionOptions): Promise<unknown> => {
    const client = new pg.Client({ connectionString: withoutTlsParameters(raw), ssl, connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return undefined;
    } catch (err) {
      return err;
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  let settled: SslMode;
  if (mode === 'prefer') {
    const err = await attempt(tlsOptions(raw, env));
    settled = (err as Error | undefined)?.message === NO_TLS_MESSAGE ? 'disable' : 'require';
  } else {
    const err = (await attempt(false)) as { code?: string } | undefined;
    // 28000: pg_hba has no line for a plain connection from here (hostssl only).
    settled = err?.code === '28000' ? 'require' : 'disable';
  }
  url.searchParams.set('sslmode', settled);
  return url.toString();
}
