/**
 * Reads a web configuration file in the format of the Prometheus exporter-toolkit's
 * `--web.config.file` (docs/security.md), so a file an operator keeps for node_exporter works here
 * unchanged, and checks it as exporter-toolkit does:
 *
 *   - strict YAML: an unknown key is an error (exporter-toolkit decodes with UnmarshalStrict);
 *   - relative file names are relative to the file's own directory;
 *   - TLS is on when any of cert, cert_file, key, key_file, client_ca, client_ca_file or
 *     client_auth_type is set; then a certificate and a key are required and must load;
 *   - client CAs without a client_auth_type, an unknown client_auth_type, version, cipher or curve,
 *     a header outside exporter-toolkit's list, or a user whose hash is no bcrypt hash are errors.
 *
 * Beyond exporter-toolkit, what Node cannot honour is refused here instead of failing at the first
 * handshake: TLS 1.0 and 1.1, a minimum above the maximum, and rate limiting (not offered).
 *
 * Every error names the key (`tls_server_config.min_version`), so the one line an operator reads
 * says what to fix.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { parseDocument } from 'yaml';
import {
  CIPHER_SUITES,
  CLIENT_AUTH_TYPES,
  type ClientAuthType,
  CURVES,
  EXTRA_HEADERS,
  TLS_VERSIONS,
  type TlsVersionName,
  VERSIONS_NODE_REFUSES,
} from './tlsNames.js';

export interface TlsSettings {
  /** What tls.createSecureContext (and so server.setSecureContext) takes. */
  context: SecureContextOptions;
  clientAuth: ClientAuthType;
  /** Undefined: any client certificate the policy lets through; else one of its SANs must be listed. */
  allowedSans: readonly string[] | undefined;
}

export interface WebConfig {
  path: string;
  /** Undefined: plain HTTP. */
  tls: TlsSettings | undefined;
  /** Added to every answer. */
  headers: Readonly<Record<string, string>>;
  /** User → bcrypt hash; empty: no basic auth. */
  users: ReadonlyMap<string, string>;
  /** exporter-toolkit's http2 key; mirrorstate serves HTTP/1.1 only, so either value is honoured. */
  http2: boolean;
  /** A digest of the file and of every file it names: equal digests, equal configuration. */
  fingerprint: string;
}

export class WebConfigError extends Error {
  constructor(
    readonly path: string,
    /** The key at fault, dotted (`tls_server_config.cert_file`); empty for the file as a whole. */
    readonly key: string,
    readonly reason: string,
  ) {
    super(`web config file ${path}: ${key === '' ? '' : `${key}: `}${reason}`);
    this.name = 'WebConfigError';
  }
}

const TOP_KEYS = ['tls_server_config', 'http_server_config', 'rate_limit', 'basic_auth_users'];
const TLS_KEYS = [
  'cert', 'key', 'client_ca', 'cert_file', 'key_file', 'client_auth_type', 'client_ca_file', 'cipher_suites',
  'curve_preferences', 'min_version', 'max_version', 'prefer_server_cipher_suites', 'client_allowed_sans',
];
const HTTP_KEYS = ['http2', 'headers'];
const RATE_LIMIT_KEYS = ['interval', 'burst'];
/** What Go's bcrypt.Cost accepts and bcryptjs can compare: $2$, $2a$, $2b$ or $2y$, a cost of 4–31, 53 characters. */
const BCRYPT_HASH = /^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$/;
/** A Go duration that means zero (`0`, `0s`, `0ms`): rate limiting off. */
const ZERO_DURATION = /^0+(\.0+)?(ns|us|µs|ms|s|m|h)?$/;

type Fail = (key: string, reason: string) => never;
type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A section: absent or empty (`key:`) is an empty mapping, as Go's zero value; unknown keys fail. */
function section(value: unknown, key: string, allowed: readonly string[], fail: Fail): Mapping {
  if (value === undefined || value === null) return {};
  if (!isMapping(value)) return fail(key, key === '' ? `must be a YAML mapping of ${allowed.join(', ')}` : 'must be a mapping');
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) fail(key === '' ? k : `${key}.${k}`, `unknown key (known: ${allowed.join(', ')})`);
  }
  return value;
}

/** A string field; YAML scalars decode into Go strings, so a number or boolean reads as its text. */
function text(value: unknown, key: string, fail: Fail): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return fail(key, 'must be a string');
}

function list(value: unknown, key: string, fail: Fail): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return fail(key, 'must be a list');
  return value.map((item, i) => text(item, `${key}[${i}]`, fail));
}

function flag(value: unknown, key: string, fallback: boolean, fail: Fail): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') return fail(key, 'must be true or false');
  return value;
}

/** Relative names are relative to the configuration file, as exporter-toolkit's SetDirectory does. */
function resolvePath(dir: string, name: string): string {
  return name === '' || isAbsolute(name) ? name : join(dir, name);
}

async function readNamed(path: string, key: string, fail: Fail): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    return fail(key, `cannot read ${path}: ${(err as Error).message}`);
  }
}

function version(value: unknown, key: string, fallback: TlsVersionName, fail: Fail): TlsVersionName {
  const name = text(value, key, fail);
  if (value === undefined || value === null) return fallback;
  if (!(name in TLS_VERSIONS)) return fail(key, `unknown TLS version: ${name} (one of ${Object.keys(TLS_VERSIONS).join(', ')})`);
  if (VERSIONS_NODE_REFUSES.includes(name as TlsVersionName)) {
    return fail(key, `${name} is not offered: Node's OpenSSL refuses TLS 1.0 and 1.1; use TLS12 or TLS13`);
  }
  return name as TlsVersionName;
}

async function readTls(raw: unknown, dir: string, fail: Fail, digest: ReturnType<typeof createHash>): Promise<TlsSettings | undefined> {
  const s = section(raw, 'tls_server_config', TLS_KEYS, fail);
  const at = (k: string) => `tls_server_config.${k}`;
  const certText = text(s.cert, at('cert'), fail);
  const keyText = text(s.key, at('key'), fail);
  const caText = text(s.client_ca, at('client_ca'), fail);
  const certFile = resolvePath(dir, text(s.cert_file, at('cert_file'), fail));
  const keyFile = resolvePath(dir, text(s.key_file, at('key_file'), fail));
  const caFile = resolvePath(dir, text(s.client_ca_file, at('client_ca_file'), fail));
  const clientAuthText = text(s.client_auth_type, at('client_auth_type'), fail);
  const enabled = [certText, keyText, caText, certFile, keyFile, caFile, clientAuthText].some((v) => v !== '');
  if (!enabled) return undefined;

  if (certFile === '' && certText === '') fail(at('cert_file'), 'missing one of cert or cert_file');
  if (keyFile === '' && keyText === '') fail(at('key_file'), 'missing one of key or key_file');
  const cert = certFile !== '' ? await readNamed(certFile, at('cert_file'), fail) : Buffer.from(certText);
  const key = keyFile !== '' ? await readNamed(keyFile, at('key_file'), fail) : Buffer.from(keyText);
  digest.update(cert).update(key);

  let clientAuth: ClientAuthType;
  if (clientAuthText === '') clientAuth = 'NoClientCert';
  else if (clientAuthText === 'RequireClientCert') clientAuth = 'RequireAnyClientCert';
  else if ((CLIENT_AUTH_TYPES as readonly string[]).includes(clientAuthText)) clientAuth = clientAuthText as ClientAuthType;
  else return fail(at('client_auth_type'), `invalid ClientAuth: ${clientAuthText} (one of ${CLIENT_AUTH_TYPES.join(', ')})`);

  let ca: Buffer | undefined;
  if (caFile !== '') ca = await readNamed(caFile, at('client_ca_file'), fail);
  else if (caText !== '') ca = Buffer.from(caText);
  if (ca !== undefined && clientAuth === 'NoClientCert') {
    fail(at('client_auth_type'), "client CA's have been configured without a Client Auth Policy");
  }
  if (ca !== undefined) digest.update(ca);

  const ciphers = list(s.cipher_suites, at('cipher_suites'), fail).map((name, i) => {
    const openssl = CIPHER_SUITES[name];
    return openssl ?? fail(`${at('cipher_suites')}[${i}]`, `unknown cipher: ${name}`);
  });
  const curves = list(s.curve_preferences, at('curve_preferences'), fail).map((name, i) => {
    const group = CURVES[name];
    return group ?? fail(`${at('curve_preferences')}[${i}]`, `unknown curve: ${name} (one of ${Object.keys(CURVES).join(', ')})`);
  });
  const minVersion = version(s.min_version, at('min_version'), 'TLS12', fail);
  const maxVersion = version(s.max_version, at('max_version'), 'TLS13', fail);
  if (minVersion > maxVersion) fail(at('min_version'), `${minVersion} is above max_version ${maxVersion}: no version could be agreed`);
  const allowedSans = s.client_allowed_sans === undefined || s.client_allowed_sans === null
    ? undefined
    : list(s.client_allowed_sans, at('client_allowed_sans'), fail);

  const context: SecureContextOptions = {
    cert,
    key,
    minVersion: TLS_VERSIONS[minVersion],
    maxVersion: TLS_VERSIONS[maxVersion],
    honorCipherOrder: flag(s.prefer_server_cipher_suites, at('prefer_server_cipher_suites'), true, fail),
    ...(ca === undefined ? {} : { ca }),
    ...(ciphers.length === 0 ? {} : { ciphers: ciphers.join(':') }),
    ...(curves.length === 0 ? {} : { ecdhCurve: curves.join(':') }),
  };
  checkContext(context, at, fail);
  return { context, clientAuth, allowedSans };
}

/** Lets OpenSSL judge what it will be given, so a file it cannot use fails now, naming the key. */
function checkContext(context: SecureContextOptions, at: (k: string) => string, fail: Fail): void {
  try {
    new X509Certificate(context.cert as Buffer);
  } catch (err) {
    fail(at('cert_file'), `not a PEM certificate: ${(err as Error).message}`);
  }
  const tries: [string, SecureContextOptions][] = [
    [at('key_file'), { cert: context.cert, key: context.key }],
    ...(context.ca === undefined ? [] : [[at('client_ca_file'), { ca: context.ca }] as [string, SecureContextOptions]]),
    ...(context.ciphers === undefined ? [] : [[at('cipher_suites'), { ciphers: context.ciphers }] as [string, SecureContextOptions]]),
    ...(context.ecdhCurve === undefined ? [] : [[at('curve_preferences'), { ecdhCurve: context.ecdhCurve }] as [string, SecureContextOptions]]),
  ];
  for (const [key, options] of tries) {
    try {
      createSecureContext(options);
    } catch (err) {
      fail(key, `Node's TLS cannot use it: ${(err as Error).message}`);
    }
  }
}

function readHttp(raw: unknown, fail: Fail): { headers: Record<string, string>; http2: boolean } {
  const s = section(raw, 'http_server_config', HTTP_KEYS, fail);
  const http2 = flag(s.http2, 'http_server_config.http2', true, fail);
  const headers: Record<string, string> = {};
  const given = s.headers === undefined || s.headers === null ? {} : s.headers;
  if (!isMapping(given)) return fail('http_server_config.headers', 'must be a mapping');
  for (const [name, rawValue] of Object.entries(given)) {
    const key = `http_server_config.headers.${name}`;
    const value = text(rawValue, key, fail);
    const allowed = EXTRA_HEADERS[name];
    if (allowed === undefined) fail(key, `HTTP header "${name}" can not be configured (one of ${Object.keys(EXTRA_HEADERS).join(', ')})`);
    if (allowed !== null && !allowed.includes(value)) {
      fail(key, `invalid value for ${name}. Expected one of: ${allowed.map((v) => JSON.stringify(v)).join(' ')}, but got: ${JSON.stringify(value)}`);
    }
    // exporter-toolkit documents a blank value as "unset".
    if (value !== '') headers[name] = value;
  }
  return { headers, http2 };
}

function readUsers(raw: unknown, fail: Fail): Map<string, string> {
  if (raw === undefined || raw === null) return new Map();
  if (!isMapping(raw)) return fail('basic_auth_users', 'must be a mapping of user name to bcrypt hash');
  const users = new Map<string, string>();
  for (const [user, rawHash] of Object.entries(raw)) {
    // The user name is not secret, the hash is: a message names the user, never the hash.
    const key = `basic_auth_users.${user}`;
    const hash = text(rawHash, key, fail);
    const match = BCRYPT_HASH.exec(hash);
    if (!match) fail(key, 'is not a bcrypt hash ($2a$, $2b$ or $2y$, a cost, 53 characters): make one with htpasswd -nBC 10 ""');
    const cost = Number(match[1]);
    if (cost < 4 || cost > 31) fail(key, `bcrypt cost ${cost} is outside 4–31`);
    users.set(user, hash);
  }
  return users;
}

function readRateLimit(raw: unknown, fail: Fail): void {
  const s = section(raw, 'rate_limit', RATE_LIMIT_KEYS, fail);
  if (s.burst !== undefined && s.burst !== null && !Number.isInteger(s.burst)) fail('rate_limit.burst', 'must be an integer');
  const interval = text(s.interval, 'rate_limit.interval', fail);
  if (interval !== '' && !ZERO_DURATION.test(interval)) {
    fail('rate_limit.interval', 'mirrorstate does not rate-limit requests; remove rate_limit or set its interval to 0');
  }
}

/** Reads and checks the file and every file it names; throws WebConfigError naming the key at fault. */
export async function readWebConfig(path: string): Promise<WebConfig> {
  const fail: Fail = (key, reason) => {
    throw new WebConfigError(path, key, reason);
  };
  let source: string;
  try {
    source = await readFile(path, 'utf8');
  } catch (err) {
    return fail('', `cannot read it: ${(err as Error).message}`);
  }
  const digest = createHash('sha256').update(source);
  // YAML 1.1, as Go's yaml.v2 reads it; a key given twice is an error there too.
  const doc = parseDocument(source, { version: '1.1', uniqueKeys: true });
  const yamlError = doc.errors[0];
  if (yamlError) fail('', `not valid YAML: ${yamlError.message.split('\n', 1)[0]}`);
  const root = section(doc.toJS({ maxAliasCount: 100 }) as unknown, '', TOP_KEYS, fail);
  const tls = await readTls(root.tls_server_config, dirname(path), fail, digest);
  const { headers, http2 } = readHttp(root.http_server_config, fail);
  readRateLimit(root.rate_limit, fail);
  const users = readUsers(root.basic_auth_users, fail);
  return { path, tls, headers, users, http2, fingerprint: digest.digest('hex') };
}
