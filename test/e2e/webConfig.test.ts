/**
 * The web configuration file on the daemon as a process, over real TLS with certificates openssl
 * makes here: client certificates, TLS versions, basic auth, headers, the file edited while the
 * daemon runs, and a bad file at start (docs/security.md).
 */
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, type TestCerts } from '../helpers/certs.js';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const TOKEN = 'ingest-token-for-web-config';
// Cost 10, exporter-toolkit's documented default: what an operator's htpasswd -nBC 10 makes.
const ALICE = bcrypt.hashSync('alice-secret', 10);
const BOB = bcrypt.hashSync('bob-secret', 10);

let db: TestDatabase;
let certs: TestCerts;

beforeAll(async () => {
  db = await createTestDatabase('web_config');
  certs = makeCerts();
});
afterAll(async () => {
  await db?.drop();
  if (certs) rmSync(certs.dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Ask {
  method?: string;
  /** A client certificate: `client` (from the CA), `stranger` (self-signed), or none. */
  as?: 'client' | 'stranger';
  user?: string;
  password?: string;
  headers?: Record<string, string>;
  body?: string;
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  servername?: string;
  agent?: Agent;
}

function ask(port: number, path: string, options: Ask = {}): Promise<Answer> {
  const identity = options.as === undefined ? {} : {
    cert: certs.read(options.as === 'client' ? certs.clientCert : certs.strangerCert),
    key: certs.read(options.as === 'client' ? certs.clientKey : certs.strangerKey),
  };
  const headers: Record<string, string> = { ...options.headers };
  if (options.user !== undefined) {
    headers.authorization = `Basic ${Buffer.from(`${options.user}:${options.password ?? ''}`).toString('base64')}`;
  }
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers,
        ca: certs.read(certs.ca), servername: options.servername ?? 'localhost',
        ...identity,
        ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
        agent: options.agent ?? false,
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The error a request ends with; fails the test when it is answered instead. */
async function refused(answer: Promise<Answer>): Promise<string> {
  const outcome = await answer.then((a) => `answered ${a.status}`, (err: Error & { code?: string }) => `${err.code ?? ''} ${err.message}`);
  expect(outcome).not.toMatch(/^answered/);
  return outcome;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

describe('client certificates required, basic auth, and the file edited while running', () => {
  let daemon: DaemonProcess;
  let file: string;
  const tls = () => `tls_server_config:
  cert_file: ${certs.serverCert}
  key_file: ${certs.serverKey}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ${certs.ca}
`;

  beforeAll(async () => {
    file = join(certs.dir, 'web-a.yml');
    writeFileSync(file, `${tls()}basic_auth_users:\n  alice: ${ALICE}\n`);
    daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_WEB_CONFIG_FILE: file, MIRRORSTATE_INGEST_TOKEN: TOKEN } });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('answers HTTPS to a client with a certificate from the CA, and refuses plain HTTP', async () => {
    expect((await ask(daemon.port, '/healthz', { as: 'client' })).status).toBe(200);
    const plain = await fetch(`http://127.0.0.1:${daemon.port}/metrics`).then((r) => `answered ${r.status}`, () => 'refused');
    expect(plain).toBe('refused');
  });

  it('refuses a client without a certificate, and one whose certificate no configured CA signed', async () => {
    await refused(ask(daemon.port, '/healthz'));
    await refused(ask(daemon.port, '/healthz', { as: 'stranger' }));
  });

  it('asks for basic auth on every route but the probes and ingest', async () => {
    for (const path of ['/metrics', '/', '/api/v1/mirrors', '/mirrors/x', '/no/such/route']) {
      const none = await ask(daemon.port, path, { as: 'client' });
      expect(none.status, path).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Basic realm=/);
      expect((await ask(daemon.port, path, { as: 'client', user: 'alice', password: 'wrong' })).status).toBe(401);
    }
    const metrics = await ask(daemon.port, '/metrics', { as: 'client', user: 'alice', password: 'alice-secret' });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('mirrorstate_');
    expect((await ask(daemon.port, '/no/such/route', { as: 'client', user: 'alice', password: 'alice-secret' })).status).toBe(404);
    expect((await ask(daemon.port, '/healthz', { as: 'client' })).status).toBe(200);
    expect((await ask(daemon.port, '/readyz', { as: 'client' })).status).toBe(200);
  });

  it('leaves ingest to its bearer token', async () => {
    const update = JSON.stringify({ mirror: 'web_config_m', status: 'running', observedAt: new Date().toISOString() });
    const post = (headers: Record<string, string>) =>
      ask(daemon.port, '/api/v1/updates', { as: 'client', method: 'POST', body: update, headers: { 'content-type': 'application/json', ...headers } });
    expect((await post({ authorization: `Bearer ${TOKEN}` })).status).toBe(202);
    const noToken = await post({});
    expect(noToken.status).toBe(401);
    expect(noToken.body).toMatch(/token/i);
    // A method ingest does not take is no longer ingest's: basic auth first.
    expect((await ask(daemon.port, '/api/v1/updates', { as: 'client' })).status).toBe(401);
  });

  it('answers an unknown user as slowly as a known user with a wrong password', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const timed = async (user: string, password: string) => {
      const started = performance.now();
      const answer = await ask(daemon.port, '/metrics', { as: 'client', user, password, agent });
      return { status: answer.status, ms: performance.now() - started };
    };
    try {
      await timed('alice', 'alice-secret'); // the connection, and alice's right password into the cache
      const wrong: number[] = [];
      const unknown: number[] = [];
      const cached: number[] = [];
      for (let i = 0; i < 7; i++) {
        // A new password each time, so neither is answered from the cache.
        const w = await timed('alice', `wrong-${i}`);
        const u = await timed(`nobody-${i}`, `wrong-${i}`);
        const c = await timed('alice', 'alice-secret');
        expect([w.status, u.status, c.status]).toEqual([401, 401, 200]);
        wrong.push(w.ms);
        unknown.push(u.ms);
        cached.push(c.ms);
      }
      // A property, not a performance figure: the two kinds of refusal cost the same bcrypt
      // comparison. Answering unknown users without one would make them many times faster than
      // the wrong password, which itself is many times slower than an answer from the cache.
      const ratio = median(unknown) / median(wrong);
      expect(ratio, `unknown ${median(unknown)} ms, wrong password ${median(wrong)} ms`).toBeGreaterThan(0.5);
      expect(ratio).toBeLessThan(2);
      expect(median(wrong), `wrong password ${median(wrong)} ms, cached ${median(cached)} ms`).toBeGreaterThan(5 * median(cached));
    } finally {
      agent.destroy();
    }
  });

  it('takes a good edit (a new user, a new certificate) and keeps the previous file through a bad one', async () => {
    const bob = () => ask(daemon.port, '/metrics', { as: 'client', user: 'bob', password: 'bob-secret' });
    expect((await bob()).status).toBe(401);
    writeFileSync(file, `${tls()}basic_auth_users:\n  alice: ${ALICE}\n  bob: ${BOB}\n`);
    await waitFor('bob let in', async () => (await bob()).status === 200, 20_000, 200);

    writeFileSync(file, `${tls()}basic_auth_users:\n  alice: ${ALICE}\n  bob: secret-in-clear\n`);
    await waitFor('the warning', () => /basic_auth_users\.bob: is not a bcrypt hash.*keeping the previous configuration/.test(daemon.output()), 20_000, 100);
    expect(daemon.output()).not.toContain('secret-in-clear');
    expect((await bob()).status).toBe(200);
    expect((await ask(daemon.port, '/metrics', { as: 'client', user: 'alice', password: 'alice-secret' })).status).toBe(200);

    // Another certificate, for another host: a client that checks the name now refuses it.
    writeFileSync(file, tls().replace(certs.serverCert, certs.wrongHostCert).replace(certs.serverKey, certs.wrongHostKey) +
      `basic_auth_users:\n  alice: ${ALICE}\n`);
    await waitFor('the new certificate', async () => {
      const outcome = await ask(daemon.port, '/healthz', { as: 'client' }).then(() => 'answered', (err: { code?: string }) => err.code);
      return outcome === 'ERR_TLS_CERT_ALTNAME_INVALID';
    }, 20_000, 200);
    expect((await ask(daemon.port, '/healthz', { as: 'client', servername: 'elsewhere.test' })).status).toBe(200);
    expect((await ask(daemon.port, '/metrics', { as: 'client', servername: 'elsewhere.test', user: 'bob', password: 'bob-secret' })).status).toBe(401);

    // TLS off while running takes a restart: refused, and said so.
    writeFileSync(file, `basic_auth_users:\n  alice: ${ALICE}\n`);
    await waitFor('the refusal', () => /tls_server_config: turning TLS on or off takes a restart/.test(daemon.output()), 20_000, 100);
    expect((await ask(daemon.port, '/healthz', { as: 'client', servername: 'elsewhere.test' })).status).toBe(200);
  });
});

describe('TLS 1.3 only, client certificates verified if given, headers', () => {
  let daemon: DaemonProcess;
  let file: string;
  const config = (clientAuth: string) => `tls_server_config:
  cert_file: ${certs.serverCert}
  key_file: ${certs.serverKey}
  min_version: TLS13
  client_auth_type: ${clientAuth}
  client_ca_file: ${certs.ca}
http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
`;

  beforeAll(async () => {
    file = join(certs.dir, 'web-b.yml');
    writeFileSync(file, config('VerifyClientCertIfGiven'));
    daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_WEB_CONFIG_FILE: file } });
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('refuses TLS 1.2 and answers TLS 1.3', async () => {
    const code = await refused(ask(daemon.port, '/metrics', { maxVersion: 'TLSv1.2' }));
    expect(code).toMatch(/protocol version/i);
    expect((await ask(daemon.port, '/metrics', { maxVersion: 'TLSv1.3' })).status).toBe(200);
  });

  it('adds the configured headers to every answer', async () => {
    for (const path of ['/metrics', '/healthz', '/no/such/route']) {
      const answer = await ask(daemon.port, path);
      expect(answer.headers['x-frame-options'], path).toBe('deny');
      expect(answer.headers['strict-transport-security']).toBe('max-age=31536000');
    }
  });

  it('VerifyClientCertIfGiven: no certificate or a good one, not a bad one; RequireAnyClientCert: any, not none', async () => {
    expect((await ask(daemon.port, '/healthz')).status).toBe(200);
    expect((await ask(daemon.port, '/healthz', { as: 'client' })).status).toBe(200);
    await refused(ask(daemon.port, '/healthz', { as: 'stranger' }));

    writeFileSync(file, config('RequireAnyClientCert'));
    await waitFor('the new policy', () => ask(daemon.port, '/healthz').then(() => false, () => true), 20_000, 200);
    expect((await ask(daemon.port, '/healthz', { as: 'stranger' })).status).toBe(200);
    expect((await ask(daemon.port, '/healthz', { as: 'client' })).status).toBe(200);
 
    // A new minimum version reaches new connections too, and no session from before resumes (the
    // new secure context has new ticket keys): a resumed session would skip the client checks.
    const session = await handshake();
    expect((await handshake(session.session)).reused).toBe(true); // without a change, it would

    writeFileSync(file, config('RequireAnyClientCert').replace('min_version: TLS13', 'min_version: TLS12'));
    await waitFor('TLS 1.2 let in', () => ask(daemon.port, '/healthz', { as: 'client', maxVersion: 'TLSv1.2' }).then(() => true, () => false), 20_000, 200);
 
    expect((await handshake(session.session)).reused).toBe(false);
  });

  it('client_allowed_sans: a client certificate must carry one of them, exactly', async () => {
    const sans = (list: string) =>
      config('RequireAndVerifyClientCert').replace(`  client_ca_file: ${certs.ca}\n`, `  client_ca_file: ${certs.ca}\n  client_allowed_sans: [${list}]\n`);
    const client = () => ask(daemon.port, '/healthz', { as: 'client' }).then((a) => a.status, () => 'refused');
    writeFileSync(file, sans('other.test, spiffe://test/prometheus'));
    // In force once a certificate no CA signed is refused again (RequireAnyClientCert took it).
    await waitFor('the new file', () => ask(daemon.port, '/healthz', { as: 'stranger' }).then(() => false, () => true), 20_000, 200);
    expect(await client()).toBe(200); // by its URI SAN
    // `prometheus` is the certificate's common name, not one of its SANs.
    writeFileSync(file, sans('other.test, prometheus'));
    await waitFor('the client refused', async () => (await client()) === 'refused', 20_000, 200);
  });

  /** One TLS handshake with the client certificate, resuming `session` if given; the ticket it got. */
  function handshake(session?: Buffer): Promise<{ session: Buffer; reused: boolean }> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({
        host: '127.0.0.1', port: daemon.port, servername: 'localhost', ca: certs.read(certs.ca),
        cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey), ...(session === undefined ? {} : { session }),
      });
      let ticket: Buffer | undefined;
      let reused = false;
      socket.on('session', (t: Buffer) => (ticket = t));
      socket.on('error', reject);
      socket.on('data', () => undefined);
      socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
      socket.once('secureConnect', () => {
        reused = socket.isSessionReused();
        // TLS 1.3 sends its tickets after the handshake; the answer comes after them.
        socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      });
      socket.on('close', () => {
        const kept = ticket ?? session; // a resumed session may get no new ticket
        if (kept === undefined) reject(new Error('no session ticket'));
        else resolve({ session: kept, reused });
      });
    });
  }
});

it('a bad file stops the start with one line naming the key', () => {
  const file = join(certs.dir, 'web-bad.yml');
  writeFileSync(file, `tls_server_config:\n  cert_file: ${certs.serverCert}\n  key_file: ${certs.serverKey}\n  min_version: TLS111\n`);
  const run = spawnSync(process.execPath, [CLI, 'run', '--web-config-file', file], {
    env: { ...process.env, DATABASE_URL: db.url, MIRRORSTATE_HTTP_PORT: '0' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(run.status).toBe(2);
  expect(run.stderr).toBe(`mirrorstate: web config file ${file}: tls_server_config.min_version: unknown TLS version: TLS111 (one of TLS10, TLS11, TLS12, TLS13)\n`);
});
