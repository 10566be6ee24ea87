/**
 * GET /api/v1/mirrors at fleet scale, against the daemon as a process: the streamed answer is the
 * catalog's list exactly (mirror order `collate "C"`, every field), every page comes from one
 * snapshot while a writer commits between them, and a reader that goes away costs nothing.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorState } from '../../src/catalog/views.js';
import { readMirrors } from '../../src/catalog/readMirrors.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { migrateCatalog, SCHEMA } from './support.js';

/** Enough for the answer (~10 MB) to outgrow the socket buffers, so the server waits on the reader. */
const MIRRORS = 20_000;

let db: TestDatabase;
let daemon: DaemonProcess;

beforeAll(async () => {
  db = await createTestDatabase('reads_list');
  await migrateCatalog(db.pool);
  // Names whose byte order differs from most locales' order, a dropped mirror every 100th.
  await db.pool.query(
    `insert into ${SCHEMA}.mirrors (mirror, status, status_since, observed_at, seq, rows_synced, lag_seconds, dropped_at,
       workflow_id, error_class, error_message, transitions_total, journal_length)
     select case when i % 3 = 0 then 'M_' else 'm_' end || lpad(i::text, 6, '0'), 'running',
       now() - make_interval(secs => i), now() - make_interval(secs => i / 2.0), i % 5, i::bigint * 10, i / 7.0,
       case when i % 100 = 0 then now() end, 'wf "' || i || '"', case when i % 50 = 0 then 'auth' end,
       case when i % 50 = 0 then 'boom \\ ' || i end, 1, 0
     from generate_series(1, $1::int) as i`,
    [MIRRORS],
  );
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

/** GET with a reader that takes `delayMs` over each chunk, so the server waits on it between pages. */
function slowGet(path: string, delayMs: number, onChunk?: () => void): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${daemon.url}${path}`, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        onChunk?.();
        if (delayMs > 0) {
          res.pause();
          setTimeout(() => res.resume(), delayMs);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /api/v1/mirrors, streamed', () => {
  it('answers exactly the catalog list, in byte order, dropped ones only when asked', async () => {
    const { status, text } = await slowGet('/api/v1/mirrors', 0);
    expect(status).toBe(200);
    const body = JSON.parse(text) as { mirrors: MirrorState[] };
    const expected = await readMirrors(db.pool, SCHEMA);
    expect(expected).toHaveLength(MIRRORS - MIRRORS / 100);
    expect(body.mirrors).toEqual(expected);
    expect(body.mirrors[0]?.mirror.startsWith('M_')).toBe(true); // "C" order: upper case first

    const all = JSON.parse((await slowGet('/api/v1/mirrors?dropped=true', 0)).text) as { mirrors: MirrorState[] };
    expect(all.mirrors).toEqual(await readMirrors(db.pool, SCHEMA, { dropped: true }));
    expect(all.mirrors.filter((m) => m.dropped)).toHaveLength(MIRRORS / 100);
  });

  it('reads every page from one snapshot while a writer commits between them', async () => {
    // Each write moves the first and the last mirror of the list together, in one transaction: an
    // answer that paired pages from two snapshots would show them apart.
    const [first, last] = ['M_000003', `m_${String(MIRRORS - 1).padStart(6, '0')}`];
    let writes = 0;
    let writing = true;
    // One write committed before the request: the fixture's own values of the two rows differ, so a
    // snapshot from before any write would fail the comparison below for no fault of the reader.
    writes++;
    await db.pool.query(`update ${SCHEMA}.mirrors set rows_synced = $1, updated_at = now() where mirror in ($2, $3)`, [writes, first, last]);
    const writer = (async () => {
      while (writing) {
        writes++;
        await db.pool.query(`update ${SCHEMA}.mirrors set rows_synced = $1, updated_at = now() where mirror in ($2, $3)`, [writes, first, last]);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    let writesSeenByReader = 0;
    let writesAtFirstChunk = -1;
    try {
      const { text } = await slowGet('/api/v1/mirrors', 3, () => {
        if (writesAtFirstChunk < 0) writesAtFirstChunk = writes;
        writesSeenByReader = writes;
      });
      const mirrors = (JSON.parse(text) as { mirrors: MirrorState[] }).mirrors;
      const [a, b] = [mirrors.find((m) => m.mirror === first), mirrors.find((m) => m.mirror === last)];
      expect(mirrors.at(-1)?.mirror).toBe(last);
      expect(a?.rowsSynced).toBe(b?.rowsSynced);
    } finally {
      writing = false;
      await writer;
    }
    // The writer did commit while the answer was being read, or the test proved nothing.
    expect(writesSeenByReader - writesAtFirstChunk).toBeGreaterThan(10);
  });

  it('lets a reader go away mid-answer and keeps serving', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = request(`${daemon.url}/api/v1/mirrors`, { agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.end();
    });
    // The cursor's transaction ended: no session of the daemon stays idle in a transaction.
    await waitFor('the snapshot transaction to end', async () => {
      const { rows } = await db.pool.query(
        `select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`,
      );
      return rows[0].n === 0;
    }, 10_000, 50);
    const { status, text } = await slowGet('/api/v1/mirrors?dropped=true', 0);
    expect(status).toBe(200);
    expect((JSON.parse(text) as { mirrors: unknown[] }).mirrors).toHaveLength(MIRRORS);
    expect(daemon.output()).not.toMatch(/request failed/);
  });
});
