/**
 * Databases over TLS as libpq users expect (docs/security.md), against a private PostgreSQL with
 * ssl=on, a server certificate for `localhost` from a CA this test makes, and a pg_hba that takes
 * TCP connections over TLS only (hostssl), so a connection that silently fell back to plain text
 * would fail here too.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionConfig, NO_SESSION_LIMITS, settleSslMode, tlsProblem } from '../../src/db/connection.js';
import { createProducer, type UpdateInput } from '../../src/index.js';
import { makeCa, type TestCa } from '../helpers/certificates.js';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { SERVER_URL } from '../helpers/db.js';
import { PeerdbPlayer } from '../helpers/peerdb.js';
import { type PrivatePostgres, startPrivatePostgres } from '../helpers/privatePostgres.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const exec = promisify(execFile);
const PASSWORD = 'tls-s3cret-pw';
const READER_PASSWORD = 'reader-s3cret-pw';
const FIXTURE = new URL('../fixtures/peerdb-catalog.sql', import.meta.url);

let ca: TestCa;
let otherCa: TestCa;
let server: PrivatePostgres;
let clientCert: { certFile: string; keyFile: string };

/** A URL for `user` on the private server, by `host`, with these query parameters. */
function url(host: string, params: Record<string, string>, user = 'app', database = 'catalog', password = PASSWORD): string {
  const u = new URL(`postgres://${user}:${password}@${host}:${server.port}/${database}`);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

/** Connects as the daemon does and says whether the session is encrypted; rejects when it cannot connect. */
async function tlsOf(raw: string): Promise<boolean> {
  const client = new pg.Client({ ...connectionConfig(raw, NO_SESSION_LIMITS), connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    return rows[0]!.ssl;
  } finally {
    await client.end();
  }
}

async function admin(database: string, sql: string): Promise<void> {
  const client = new pg.Client(server.socket(database));
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  ca = makeCa();
  otherCa = makeCa('another CA');
  const serverCert = ca.issue('server', 'localhost', ['DNS:localhost']);
  clientCert = ca.issue('client', 'certuser');
  server = await startPrivatePostgres({
    tls: { cert: serverCert.cert, key: serverCert.key, ca: readFileSync(ca.caFile, 'utf8') },
    listen: 'localhost',
    hba: ['local all all trust', 'hostssl all certuser all cert', 'hostssl all all all scram-sha-256', ''].join('\n'),
  });
  await admin('postgres', `create role app login password '${PASSWORD}'`);
  await admin('postgres', `create role reader login password '${READER_PASSWORD}'`);
  await admin('postgres', 'create role certuser login');
  await admin('postgres', 'create database catalog owner app');
  await admin('postgres', 'create database peerdb');
  await admin('peerdb', readFileSync(FIXTURE, 'utf8'));
  await admin('peerdb', 'grant usage on schema public, peerdb_stats to reader; grant select on all tables in schema public, peerdb_stats to reader');
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  for (const dir of [ca?.dir, otherCa?.dir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('sslmode, sslrootcert, sslcert and sslkey as libpq reads them', () => {
  it('require encrypts without a root certificate, where node-pg alone refuses the same URL', async () => {
    const require = url('127.0.0.1', { sslmode: 'require' });
    expect(await tlsOf(require)).toBe(true);
    // The design this replaces: node-pg reads require as verify-full and fails on the unknown CA.
    const naive = new pg.Client({ connectionString: require });
    naive.on('error', () => undefined);
    await expect(naive.connect()).rejects.toThrow(/self[- ]signed|unable to verify|UNABLE_TO_VERIFY/i);
  });

  it('require with a root certificate checks the chain (verify-ca), as libpq does', async () => {
    expect(await tlsOf(url('127.0.0.1', { sslmode: 'require', sslrootcert: ca.caFile }))).toBe(true);
    await expect(tlsOf(url('127.0.0.1', { sslmode: 'require', sslrootcert: otherCa.caFile }))).rejects.toThrow(
      /self[- ]signed|unable to verify|UNABLE_TO_VERIFY|unable to get/i,
    );
  });

  it('verify-ca checks the chain but not the host name', async () => {
    expect(await tlsOf(url('127.0.0.1', { sslmode: 'verify-ca', sslrootcert: ca.caFile }))).toBe(true);
    await expect(tlsOf(url('127.0.0.1', { sslmode: 'verify-ca', sslrootcert: otherCa.caFile }))).rejects.toThrow();
  });

  it('verify-full checks the chain and the host, refusing a certificate for another host', async () => {
    expect(await tlsOf(url('localhost', { sslmode: 'verify-full', sslrootcert: ca.caFile }))).toBe(true);
    // The certificate names localhost; connecting to 127.0.0.1 it is some other host's.
    await expect(tlsOf(url('127.0.0.1', { sslmode: 'verify-full', sslrootcert: ca.caFile }))).rejects.toThrow(
      /does not match|altnames|ERR_TLS_CERT_ALTNAME_INVALID/i,
    );
    await expect(tlsOf(url('localhost', { sslmode: 'verify-full', sslrootcert: otherCa.caFile }))).rejects.toThrow();
  });

  it('disable sends plain text, which this server refuses', async () => {
    await expect(tlsOf(url('127.0.0.1', { sslmode: 'disable' }))).rejects.toThrow(/no pg_hba.conf entry.*no encryption/);
  });

  it('sslcert and sslkey present a client certificate (cert authentication)', async () => {
    const raw = url('localhost', { sslmode: 'verify-full', sslrootcert: ca.caFile, sslcert: clientCert.certFile, sslkey: clientCert.keyFile }, 'certuser', 'postgres', '');
    expect(await tlsOf(raw)).toBe(true);
  });

  it('allow and prefer are settled at start: TLS where the server insists or offers, plain where it has none', async () => {
    const allow = await settleSslMode(url('127.0.0.1', { sslmode: 'allow' }));
    expect(new URL(allow).searchParams.get('sslmode')).toBe('require');
    expect(await tlsOf(allow)).toBe(true);
    const prefer = await settleSslMode(url('127.0.0.1', { sslmode: 'prefer' }));
    expect(new URL(prefer).searchParams.get('sslmode')).toBe('require');
    // The machine's PostgreSQL runs without ssl: prefer falls back to plain text there.
    const machine = new URL(SERVER_URL);
    machine.searchParams.set('sslmode', 'prefer');
    const settled = await settleSslMode(machine.toString());
    const ssl = await tlsOf(settled);
    expect(new URL(settled).searchParams.get('sslmode')).toBe(ssl ? 'require' : 'disable');
  });

  it('a bad combination stops the start with a message naming the parameter', () => {
    expect(tlsProblem('postgres://h/db?sslmode=verify-ca')).toMatch(/verify-ca without sslrootcert/);
    expect(tlsProblem('postgres://h/db?sslmode=required')).toMatch(/sslmode "required"/);
    expect(tlsProblem('postgres://h/db?sslrootcert=system&sslmode=require')).toMatch(/sslrootcert=system/);
    expect(tlsProblem('postgres://h/db?sslcert=/a.crt')).toMatch(/both sslcert and sslkey/);
    expect(tlsProblem('postgres://h/db?sslmode=verify-full&sslrootcert=/ca.crt')).toBeUndefined();
    expect(() => connectionConfig('postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt', NO_SESSION_LIMITS)).toThrow(
      "cannot read the database URL's sslrootcert (/nonexistent/ca.crt): ENOENT",
    );
  });
});

describe('the producer library over TLS', () => {
  const update: UpdateInput = { mirror: 'tls_producer', status: 'running', observedAt: '2026-11-21T10:00:00Z' };

  /** Publishes one update through createProducer; rejects when it cannot. */
  async function publishOver(raw: string): Promise<string[]> {
    const producer = await createProducer(raw);
    try {
      return await producer.publish([update]);
    } finally {
      await producer.stop();
    }
  }

  beforeAll(async () => {
    // A producer finds the queue made; the daemon's migration makes it.
    const env: NodeJS.ProcessEnv = { ...process.env, MIRRORSTATE_LOG_LEVEL: 'warn' };
    delete env.DATABASE_URL;
    await exec(process.execPath, [CLI, 'migrate'], { env: { ...env, DATABASE_URL: url('localhost', { sslmode: 'verify-full', sslrootcert: ca.caFile }) } });
  }, 60_000);

  it('require publishes without a root certificate', async () => {
    expect(await publishOver(url('127.0.0.1', { sslmode: 'require' }))).toHaveLength(1);
  });

  it('its sessions carry the daemon\'s default session limits', async () => {
    const producer = await createProducer(url('localhost', { sslmode: 'verify-full', sslrootcert: ca.caFile }));
    try {
      const { rows } = await producer.boss.getDb().executeSql(
        `select current_setting('statement_timeout') as statement, current_setting('idle_in_transaction_session_timeout') as idle`,
      );
      expect(rows).toEqual([{ statement: '5min', idle: '1min' }]);
    } finally {
      await producer.stop();
    }
  });

  it('verify-full publishes with the CA, and refuses a certificate that does not name the host, without the password', async () => {
    expect(await publishOver(url('localhost', { sslmode: 'verify-full', sslrootcert: ca.caFile }))).toHaveLength(1);
    // The certificate names localhost; connecting to 127.0.0.1 it is some other host's.
    const refused = await publishOver(url('127.0.0.1', { sslmode: 'verify-full', sslrootcert: ca.caFile })).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(refused?.message).toMatch(/does not match|altnames|ERR_TLS_CERT_ALTNAME_INVALID/i);
    expect(refused?.message).not.toContain(PASSWORD);
  });

  it('a bad sslmode is refused before any connection, naming the parameter', async () => {
    await expect(createProducer(url('127.0.0.1', { sslmode: 'required' }))).rejects.toThrow(/connectionString has sslmode "required"/);
  });
});

describe('the daemon over TLS', () => {
  let daemon: DaemonProcess | undefined;

  /** A daemon on the catalog by verify-full, reading PeerDB's catalog by verify-full at `peerdbHost`. */
  function startDaemonReadingPeerdbBy(peerdbHost: string): Promise<DaemonProcess> {
    return startDaemon({
      databaseUrl: url('localhost', { sslmode: 'verify-full', sslrootcert: ca.caFile }),
      env: {
        MIRRORSTATE_PEERDB_URL: url(peerdbHost, { sslmode: 'verify-full', sslrootcert: ca.caFile }, 'reader', 'peerdb', READER_PASSWORD),
        MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s',
        MIRRORSTATE_LOG_LEVEL: 'debug',
      },
    });
  }
  afterAll(async () => {
    await daemon?.stop();
  });

  it('verify-full works for the catalog and for PeerDB’s catalog, and no password reaches the log', async () => {
    const player = new PeerdbPlayer(new pg.Pool(server.socket('peerdb')));
    try {
      await player.createFlow('orders_mirror');
    } finally {
      await player.pool.end();
    }
    daemon = await startDaemonReadingPeerdbBy('localhost');
    await waitFor('the PeerDB mirror on /metrics', async () => {
      const text = await scrape(daemon!.url);
      return seriesValue(text, 'mirrorstate_peerdb_up') === 1 && text.includes('mirror="orders_mirror"');
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${daemon!.output()}`);
    });
    // Every connection the daemon holds on either database is encrypted (pg_hba allows nothing else).
    const client = new pg.Client(server.socket('postgres'));
    await client.connect();
    try {
      const { rows } = await client.query<{ usename: string; ssl: boolean }>(
        `select a.usename, s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid) where a.usename in ('app', 'reader')`,
      );
      expect(new Set(rows.map((r) => r.usename))).toEqual(new Set(['app', 'reader']));
      expect(rows.every((r) => r.ssl)).toBe(true);
    } finally {
      await client.end();
    }
    await daemon.stop();
    expect(daemon.output()).not.toContain(PASSWORD);
    expect(daemon.output()).not.toContain(READER_PASSWORD);
  });

  it('PeerDB by a host name its certificate does not carry: peerdb_up 0, the daemon serves on, no password in the log', async () => {
    const wrongHost = await startDaemonReadingPeerdbBy('127.0.0.1');
    try {
      // Twice: the poller leads, fails, backs off and fails again, and the daemon goes on serving.
      await waitFor('two failed PeerDB polls', () => (wrongHost.output().match(/PeerDB poll failed/g) ?? []).length >= 2).catch((err: Error) => {
        throw new Error(`${err.message}\n${wrongHost.output()}`);
      });
      expect(wrongHost.output()).toMatch(/does not match|altnames|ERR_TLS_CERT_ALTNAME_INVALID/i);
      const text = await scrape(wrongHost.url);
      expect(seriesValue(text, 'mirrorstate_peerdb_leader')).toBe(1);
      expect(seriesValue(text, 'mirrorstate_peerdb_up')).toBe(0);
      expect((await fetch(`${wrongHost.url}/readyz`)).status).toBe(200);
      expect(wrongHost.proc.exitCode).toBeNull();
    } finally {
      expect(await wrongHost.stop()).toBe(0);
    }
    expect(wrongHost.output()).not.toContain(PASSWORD);
    expect(wrongHost.output()).not.toContain(READER_PASSWORD);
  });

  it('migrate: require without a root certificate works; verify-full to a host the certificate does not name fails, without the password', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, MIRRORSTATE_LOG_LEVEL: 'info' };
    delete env.DATABASE_URL;
    await exec(process.execPath, [CLI, 'migrate'], { env: { ...env, DATABASE_URL: url('127.0.0.1', { sslmode: 'require' }) } });
    const failed = await exec(process.execPath, [CLI, 'migrate'], {
      env: { ...env, DATABASE_URL: url('127.0.0.1', { sslmode: 'verify-full', sslrootcert: ca.caFile }) },
    }).then(
      () => undefined,
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(`${failed?.stdout}${failed?.stderr}`).toMatch(/does not match|altnames|ERR_TLS_CERT_ALTNAME_INVALID/i);
    expect(`${failed?.stdout}${failed?.stderr}`).not.toContain(PASSWORD);
  });
});
