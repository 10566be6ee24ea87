/**
 * Every bad request a 4xx, never a 5xx (docs/http.md, "Bad requests"), on the daemon as a process,
 * written byte for byte on raw sockets where a client library would tidy the request first.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, startDaemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
let daemon: DaemonProcess;

beforeAll(async () => {
  db = await createTestDatabase('bad_requests');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_INGEST_TOKEN: 'bad-requests-token' } });
});
afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/** Writes `target` as the request line's target, as is, and reads the answer until the server closes. */
function raw(method: string, target: string | Buffer, headers = ''): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(daemon.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', body = ''] = text.split('\r\n\r\n', 2);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body });
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${method} ${String(target)}`)));
    socket.write(Buffer.concat([
      Buffer.from(`${method} `), Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1'),
      Buffer.from(` HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers}\r\n`),
    ]));
  });
}

function header(answer: RawAnswer, name: string): string | undefined {
  return new RegExp(`^${name}: (.*)$`, 'im').exec(answer.head)?.[1]?.trim();
}

describe('names and parameters the catalog could never hold', () => {
  it.each([
    ['/api/v1/mirrors/%00', 'mirror'],
    ['/api/v1/mirrors/a%00b/transitions', 'mirror'],
    ['/mirrors/%00', 'mirror'],
    ['/mirrors/?name=%00', 'name'],
    ['/?after=%00', 'after'],
    ['/?before=x%00', 'before'],
  ])('%s answers 400 naming %s, before the catalog is asked', async (target, parameter) => {
    const answer = await raw('GET', target);
    expect(answer.status).toBe(400);
    expect(answer.body).toContain(parameter);
  });

  it('never a 5xx for any byte, percent-encoded, in a name or a cursor', async () => {
    const statuses = new Map<string, number>();
    for (let byte = 0; byte < 256; byte++) {
      const hex = `%${byte.toString(16).padStart(2, '0').toUpperCase()}`;
      for (const target of [`/api/v1/mirrors/${hex}`, `/api/v1/mirrors/${hex}/transitions`, `/mirrors/${hex}`, `/?after=${hex}`, `/mirrors/?name=${hex}`]) {
        const res = await fetch(`${daemon.url}${target}`);
        await res.arrayBuffer();
        statuses.set(target, res.status);
      }
    }
    const failed = [...statuses].filter(([, status]) => status >= 500);
    expect(failed).toEqual([]);
  });

  it('never a 5xx for any raw byte in the path or the query', async () => {
    const failed: string[] = [];
    for (let byte = 0; byte < 256; byte++) {
      if (byte === 0x20) continue; // a space ends the target
      for (const [before, after] of [['/api/v1/mirrors/', ''], ['/mirrors/', ''], ['/?after=', '']]) {
        const answer = await raw('GET', Buffer.concat([Buffer.from(before ?? ''), Buffer.from([byte]), Buffer.from(after ?? '')]));
        // 0: Node's parser refused the request line and closed without an answer; that is no 5xx either.
        if (answer.status >= 500) failed.push(`${before}<${byte}> ${answer.status}`);
      }
    }
    expect(failed).toEqual([]);
  });
});

describe('request targets', () => {
  it.each(['//', '//x:99999/', '//%00', '/..%00'])('%s is no route: 404', async (target) => {
    expect((await raw('GET', target)).status).toBe(404);
  });

  it('an absolute-form target is routed by its path (RFC 9112, 3.2.2)', async () => {
    const metrics = await raw('GET', 'http://example.test/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('mirrorstate_');
    expect((await raw('GET', 'http://example.test:99999/healthz')).status).toBe(200);
    const page = await raw('GET', 'https://example.test'); // no path: "/", the status page
    expect(page.status).toBe(200);
    expect(header(page, 'Content-Type')).toBe('text/html; charset=utf-8');
    expect((await raw('GET', 'http://example.test/api/v1/mirrors?limit=1')).status).toBe(200);
  });

  it('a target that is neither a path nor a URL: 400', async () => {
    expect((await raw('OPTIONS', '*')).status).toBe(400);
    expect((await raw('GET', 'metrics')).status).toBe(400);
  });

  it('a method the path does not take: 405 with Allow', async () => {
    const del = await raw('DELETE', '/metrics');
    expect(del.status).toBe(405);
    expect(header(del, 'Allow')).toBe('GET, HEAD');
    const get = await raw('GET', '/api/v1/updates');
    expect(get.status).toBe(405);
    expect(header(get, 'Allow')).toBe('POST');
    const post = await raw('POST', '/api/v1/mirrors/x', 'Content-Length: 0\r\n');
    expect(post.status).toBe(405);
    expect(header(post, 'Allow')).toBe('GET, HEAD');
  });

  it('logged no error and no stack for any of them', () => {
    const errors = daemon.output().split('\n').filter((line) => /"level":(50|60)/.test(line) || /\n\s+at /.test(line));
    expect(errors).toEqual([]);
  });
});

it('cuts off a client that trickles its headers once headersTimeout (10 s) has passed', async () => {
  const socket = connect(daemon.port, '127.0.0.1');
  const started = Date.now();
  let answer = '';
  socket.on('data', (chunk) => (answer += chunk.toString()));
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - started)));
  socket.on('error', () => undefined);
  socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
  const trickle = setInterval(() => socket.write('X-Slow: 1\r\n'), 500);
  try {
    // Node looks for late headers only every 30 s by default (connectionsCheckingInterval), so
    // without the server's own, shorter check this client would be cut off only after that.
    const elapsed = await closed;
    expect(elapsed).toBeGreaterThanOrEqual(9_500);
    expect(elapsed).toBeLessThan(15_000);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  } finally {
    clearInterval(trickle);
    socket.destroy();
  }
});
