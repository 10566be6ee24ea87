/**
 * Slow scrapers against the daemon as a process: an answer counts against MAX_CONCURRENT_SCRAPES
 * until it is sent, so readers that stall hold at most that many answers in memory (the next
 * scrape gets 503 until one leaves), and an answer still unsent SEND_GRACE_MS after the scrape's
 * own timeout is cut off, so a stalled reader cannot hold a slot for good.
 */
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CONCURRENT_SCRAPES, SEND_GRACE_MS } from '../../src/metrics/route.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { migrateCatalog, SCHEMA } from '../reads/support.js';

/** ~12 MB of plain text: far more than the socket buffers take, so a reader that stops stalls the answer. */
const MIRRORS = 10_000;

let db: TestDatabase;
let daemon: DaemonProcess;

beforeAll(async () => {
  db = await createTestDatabase('metrics_slow_scrapers');
  await migrateCatalog(db.pool);
  await db.pool.query(
    `insert into ${SCHEMA}.mirrors (mirror, status, status_since, observed_at, seq, workflow_id, rows_synced, lag_seconds)
     select 'mirror_' || lpad(i::text, 6, '0'), 'running', now(), now(), 0, 'wf-' || i, i, i / 3.0
     from generate_series(1, $1::int) as i`,
    [MIRRORS],
  );
  daemon = await startDaemon({ databaseUrl: db.url });
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

interface Stalled {
  req: ClientRequest;
  res: IncomingMessage;
  received: number;
  /** Resolves when the server ended the answer or cut the connection: whether it arrived in full. */
  ended: Promise<'complete' | 'cut'>;
}

/** A GET /metrics whose reader takes the first chunk and then stops reading. */
function stalledScrape(headers: Record<string, string> = {}): Promise<Stalled> {
  return new Promise((resolve, reject) => {
    const req = request(`${daemon.url}/metrics`, { agent: false, headers }, (res) => {
      const stalled: Stalled = {
        req, res, received: 0,
        ended: new Promise((done) => {
          res.once('end', () => done('complete'));
          res.once('aborted', () => done('cut'));
          res.once('error', () => done('cut'));
          req.once('close', () => done(res.complete ? 'complete' : 'cut'));
        }),
      };
      res.once('data', (chunk: Buffer) => {
        stalled.received += chunk.length;
        res.pause();
        resolve(stalled);
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
}

async function status(): Promise<number> {
  const res = await fetch(`${daemon.url}/metrics`);
  await res.arrayBuffer();
  return res.status;
}

describe('slow scrapers', () => {
  it('hold at most MAX_CONCURRENT_SCRAPES answers; the next scrape gets 503 until one leaves', async () => {
    expect(await status()).toBe(200); // warms the cache: every stalled answer below is a full one
    const stalled: Stalled[] = [];
    try {
      for (let i = 0; i < MAX_CONCURRENT_SCRAPES; i++) stalled.push(await stalledScrape());
      // Each has a full answer queued that the socket cannot take: none of them has finished.
      await new Promise((r) => setTimeout(r, 300));
      const refused = await fetch(`${daemon.url}/metrics`);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(await refused.text()).toMatch(/too many concurrent scrapes/);

      stalled.pop()!.req.destroy();
      await waitFor('a slot freed by the reader that left', async () => (await status().catch(() => 0)) === 200, 10_000, 50);
    } finally {
      for (const s of stalled) s.req.destroy();
    }
    await waitFor('every slot free again', async () => {
      // On a loaded machine a full answer can take longer than its scrape deadline and be cut: that
      // scrape did not get its slot refused, so it is tried again rather than failing the test.
      const codes = await Promise.all(Array.from({ length: MAX_CONCURRENT_SCRAPES }, () => status().catch(() => 0)));
      return codes.every((c) => c === 200);
    }, 10_000, 50);
  });

  it('cuts off an answer its scraper stopped reading, SEND_GRACE_MS after the scrape timeout', async () => {
    const stalled = await stalledScrape({ 'x-prometheus-scrape-timeout-seconds': '1' });
    // The server closes the connection at its deadline; what it had handed to the kernel still
    // arrives first, so the reader learns of the cut once it reads again.
    await new Promise((r) => setTimeout(r, 1000 + SEND_GRACE_MS + 1000));
    stalled.res.resume();
    expect(await stalled.ended).toBe('cut');
    // The same scrape, read at once, arrives complete: the cut was the deadline's.
    const whole = await stalledScrape({ 'x-prometheus-scrape-timeout-seconds': '1' });
    whole.res.resume();
    expect(await whole.ended).toBe('complete');
  }, 30_000);
});
