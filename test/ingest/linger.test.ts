/**
 * After an early answer (401, 413, 415 …) the daemon reads at most 1 MiB or 1 s more of the body
 * before it closes the connection: a refused client cannot make it read 64 MiB. The daemon logs, at
 * debug level, how much it drained and why it stopped; the client side counts what it got into the
 * kernel before the close (that includes both sides' socket buffers, so it is only a coarse bound).
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { TOKEN } from './client.js';

const MiB = 1024 * 1024;
const BODY_BYTES = 64 * MiB;

let db: TestDatabase;
let daemon: DaemonProcess;

beforeAll(async () => {
  db = await createTestDatabase('ingest_linger');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_INGEST_TOKEN: TOKEN, MIRRORSTATE_LOG_LEVEL: 'debug' } });
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

interface Sent {
  /** The status line, when the answer got through before the close; a reset may eat it. */
  status: string | undefined;
  /** Body bytes the kernel took before the connection closed. */
  bodyBytesWritten: number;
}

/** Sends `headers` and then up to 64 MiB of body as fast as the socket takes it (or one byte every `trickleMs`). */
function send(headers: string[], trickleMs?: number): Promise<Sent> {
  return new Promise((resolve) => {
    // Half-open, as an uploading client is: the server's FIN after its answer does not stop the body.
    const socket = connect({ port: daemon.port, host: '127.0.0.1', allowHalfOpen: true });
    let received = '';
    let written = 0;
    let offered = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined); // a reset is an acceptable end
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ status: /^HTTP\/1\.1 (\d{3})/.exec(received)?.[1], bodyBytesWritten: written });
    });
    socket.write(`${headers.join('\r\n')}\r\n\r\n`);
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (offered < BODY_BYTES && !socket.destroyed) {
        offered += chunk.length;
        const more = socket.write(chunk, (err) => {
          if (!err) written += chunk.length;
        });
        if (!more) return void socket.once('drain', pump);
      }
      if (!socket.destroyed) socket.end(); // all sent: now only the answer and the close are awaited
    };
    if (trickleMs === undefined) pump();
    else {
      timer = setInterval(() => {
        if (!socket.destroyed) socket.write(' ', (err) => (err ? undefined : (written += 1)));
      }, trickleMs);
    }
  });
}

function request(authorization: string, contentType: string): string[] {
  return [
    'POST /api/v1/updates HTTP/1.1',
    `Host: 127.0.0.1:${daemon.port}`,
    `Authorization: ${authorization}`,
    `Content-Type: ${contentType}`,
    `Content-Length: ${BODY_BYTES}`,
  ];
}

/** The daemon's log line for the next early close after `offset` in its output. */
interface Linger {
  /** Bytes the daemon read off the socket after its answer. */
  drainedBytes: number;
  /** Body bytes the request delivered in all (some came with the headers, before the answer). */
  bodyBytes: number;
  ms: number;
  why: string;
}

async function lingerLog(offset: number): Promise<Linger> {
  let line: string | undefined;
  await waitFor('the early-close log line', () => {
    line = daemon.output().slice(offset).split('\n').find((l) => l.includes('"msg":"closed after an early answer"'));
    return line !== undefined;
  }, 30_000);
  return JSON.parse(line ?? '{}') as Linger;
}

it.each([
  ['413, by Content-Length, to an authenticated client', `Bearer ${TOKEN}`, 'application/json', '413'],
  ['415, to an authenticated client', `Bearer ${TOKEN}`, 'text/plain', '415'],
  ['401, to a client with a wrong token', 'Bearer wrong-token', 'application/json', '401'],
])('after %s sending 64 MiB, reads at most 1 MiB more, then closes', async (_what, authorization, contentType, status) => {
  const offset = daemon.output().length;
  const sent = await send(request(authorization, contentType));
  const linger = await lingerLog(offset);
  expect(linger.why).toBe('byte limit');
  expect(linger.drainedBytes).toBeGreaterThan(0);
  expect(linger.drainedBytes).toBeLessThanOrEqual(MiB);
  expect(linger.bodyBytes).toBeLessThanOrEqual(MiB);
  // The client got far less than its body into the kernel: the daemon stopped reading.
  expect(sent.bodyBytesWritten).toBeLessThan(BODY_BYTES / 2);
  // The answer itself may be lost to the reset; when it arrives, it is the right one.
  if (sent.status !== undefined) expect(sent.status).toBe(status);
});

it('closes a slow body 1 s after the early answer', async () => {
  const offset = daemon.output().length;
  const sent = await send(request(`Bearer ${TOKEN}`, 'text/plain'), 50);
  const linger = await lingerLog(offset);
  expect(linger.why).toBe('time limit');
  expect(linger.ms).toBeGreaterThanOrEqual(900); // a timer never fires early (rounding aside)
  expect(linger.drainedBytes).toBeLessThan(MiB);
  expect(sent.status).toBe('415'); // a slow client has nothing in flight: its answer arrives
});
