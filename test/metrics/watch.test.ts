/**
 * /metrics reads that follow the catalog's changes (snapshot.ts, watch.ts, migration 0006): a
 * scrape of an unchanged catalog reads nothing, yet every answer holds every change committed
 * before its `takenAtSeconds`, however soon after the commit the scrape comes; changes are read
 * without a scrape asking, while the daemon is scraped at all; a catalog written without pause is
 * read about once per gap (a quarter of the time between scrapes), not once per write, and shown
 * at most STALE_SERVE_MS behind; a lost listening connection is replaced and nothing written
 * meanwhile is missed.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { GzipFamilies } from '../../src/metrics/answer.js';
import { MIRROR_FAMILIES } from '../../src/metrics/families.js';
import { createSnapshotPool } from '../../src/metrics/snapshotPool.js';
import { MirrorSnapshots, type Snapshot, STALE_SERVE_MS } from '../../src/metrics/snapshot.js';
import type { Bucket } from '../../src/metrics/textCache.js';
import { CatalogWatch } from '../../src/metrics/watch.js';
import { waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const SCHEMA = 'mirrorstate';
const OTHER_SCHEMA = 'other_catalog';
const MIRRORS = 50;
const GAP_MS = 300;
const logger = createLogger('silent');

let db: TestDatabase;
let snapshotPool: pg.Pool;
let watched: MirrorSnapshots;

const LAG = MIRROR_FAMILIES.findIndex((f) => f.name === 'peerdb_mirror_lag_seconds');

/** The lag a snapshot shows for a mirror, or undefined. */
function lagOf(snapshot: Snapshot | undefined, mirror: string): number | undefined {
  const prefix = `peerdb_mirror_lag_seconds{mirror="${mirror}"} `;
  for (const bucket of snapshot?.buckets ?? []) {
    for (const line of bucket.text[LAG]!.toString('utf8').split('\n')) {
      if (line.startsWith(prefix)) return Number(line.slice(prefix.length));
    }
  }
  return undefined;
}

async function setLag(mirror: string, lag: number, schema = SCHEMA): Promise<void> {
  await db.pool.query(`update "${schema}".mirrors set lag_seconds = $2, updated_at = clock_timestamp() where mirror = $1`, [mirror, lag]);
}

async function scrape(): Promise<Snapshot> {
  const answer = await watched.forScrape(10_000);
  expect(answer.catalogUp).toBe(true);
  return answer.snapshot!;
}

/** A wall-clock millisecond that has passed: a commit after it is after any timestamp taken at or before it. */
async function tick(): Promise<number> {
  const now = Date.now();
  while (Date.now() <= now) await new Promise((resolve) => setTimeout(resolve, 1));
  return now;
}

beforeAll(async () => {
  db = await createTestDatabase('metrics_watch');
  for (const schema of [SCHEMA, OTHER_SCHEMA]) {
    await migrate(db.pool, schema, logger);
    await db.pool.query(
      `insert into "${schema}".mirrors (mirror, status, status_since, observed_at, seq, lag_seconds)
       select 'm' || lpad(i::text, 3, '0'), 'running', now(), now(), 0, 0 from generate_series(1, $1::int) as i`,
      [MIRRORS],
    );
  }
  snapshotPool = createSnapshotPool(db.url, logger);
  watched = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger, watchUrl: db.url, refreshGapBoundsMs: [GAP_MS, GAP_MS] });
  watched.start();
  // The first read follows the start of listening, before any scrape asks.
  await waitFor('the first read', async () => watched.reads === 1);
  await waitFor('the cache current', async () => (await watched.forScrape(10_000)).snapshot !== undefined);
});

afterAll(async () => {
  await watched?.close();
  await snapshotPool?.end();
  await db?.drop();
});

describe('/metrics reads that follow the catalog', () => {
  it('reads nothing for scrapes of an unchanged catalog, and dates each answer at its scrape', async () => {
    await new Promise((resolve) => setTimeout(resolve, GAP_MS));
    const reads = watched.reads;
    let previous = 0;
    for (let i = 0; i < 20; i++) {
      const asked = await tick();
      const snapshot = await scrape();
      expect(snapshot.takenAtSeconds * 1000).toBeGreaterThanOrEqual(asked);
      expect(snapshot.takenAtSeconds).toBeGreaterThan(previous);
      previous = snapshot.takenAtSeconds;
    }
    expect(watched.reads).toBe(reads);
    // Writes to another catalog in the same database are not ours.
    await setLag('m001', 99, OTHER_SCHEMA);
    await scrape();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(watched.reads).toBe(reads);
  });

  it('holds every change committed before its takenAtSeconds, however soon the scrape follows the commit', async () => {
    // The property the barrier gives: without it, a scrape that comes before the commit's
    // notification is handled would date the cache from before the commit after it. No gap here,
    // so each write is read at once and the next starts from a current cache.
    const eager = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger, watchUrl: db.url, refreshGapBoundsMs: [0, 0] });
    eager.start();
    try {
      await waitFor('listening', async () => eager.listening);
      let dated = 0;
      for (let i = 1; i <= 40; i++) {
        // Until a scrape finds the cache current (dated at the scrape, so no change or read is
        // pending) with the previous write in it.
        await waitFor(`write ${i - 1} read`, async () => {
          const asked = Date.now();
          const { snapshot } = await eager.forScrape(10_000);
          return lagOf(snapshot, 'm002') === i - 1 && snapshot!.takenAtSeconds * 1000 >= asked;
        }, 5_000, 2);
        const before = await tick();
        await setLag('m002', i);
        const answer = await eager.forScrape(10_000);
        expect(answer.catalogUp).toBe(true);
        const lag = lagOf(answer.snapshot, 'm002');
        if (lag === i) continue;
        // The cache from before the write, dated before it.
        expect(lag).toBe(i - 1);
        expect(answer.snapshot!.takenAtSeconds * 1000, `write ${i}: the old cache dated after the write`).toBeLessThanOrEqual(before);
        dated++;
      }
      expect(dated).toBeGreaterThan(0);
    } finally {
      await eager.close();
    }
  });

  it('reads a change without a scrape asking', async () => {
    await new Promise((resolve) => setTimeout(resolve, GAP_MS));
    const reads = watched.reads;
    await setLag('m003', 7.5);
    // A read started and finished before this scrape: it only checks the barrier. (A scrape while
    // the read runs is served from the cache as it was.)
    await waitFor('a read', async () => watched.reads === reads + 1 && !watched.reading, 5_000, 5);
    expect(lagOf(await scrape(), 'm003')).toBe(7.5);
    expect(watched.reads).toBe(reads + 1);
  });

  it('follows changes only while scraped: an unscraped daemon reads at start, then not until a scrape', async () => {
    const unscraped = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger, watchUrl: db.url, refreshGapBoundsMs: [0, 0] });
    unscraped.start();
    try {
      await waitFor('the read on listening', async () => unscraped.reads === 1 && unscraped.listening);
      await setLag('m006', 1.5);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(unscraped.reads).toBe(1);
      // The first scrape finds changes nobody read, and reads them for itself...
      expect(lagOf((await unscraped.forScrape(10_000)).snapshot, 'm006')).toBe(1.5);
      expect(unscraped.reads).toBe(2);
      // ...and from then on changes are read as they come.
      await setLag('m006', 2.5);
      await waitFor('the change read without a scrape', async () => unscraped.reads === 3, 5_000, 5);
    } finally {
      await unscraped.close();
    }
  });

  it('reads a catalog written without pause once per gap, and shows it at most STALE_SERVE_MS behind', async () => {
    const reads = watched.reads;
    const started = Date.now();
    let written = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await setLag('m004', ++written);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    let scrapes = 0;
    try {
      while (Date.now() - started < 5 * GAP_MS) {
        const asked = Date.now();
        const snapshot = await scrape();
        expect(asked - snapshot.takenAtSeconds * 1000).toBeLessThanOrEqual(STALE_SERVE_MS);
        scrapes++;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } finally {
      writing = false;
      await writer;
    }
    const elapsed = Date.now() - started;
    expect(written).toBeGreaterThan(50);
    expect(scrapes).toBeGreaterThan(20);
    // One read per gap (the first at once), and perhaps one more as the writes end.
    expect(watched.reads - reads).toBeLessThanOrEqual(Math.ceil(elapsed / GAP_MS) + 2);
    await waitFor('the last write read', async () => lagOf(await scrape(), 'm004') === written);
  });

  it('reads a catalog written without pause no more often than a quarter of the time between scrapes', async () => {
    const bounds = [50, 5_000] as const;
    const slow = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger, watchUrl: db.url, refreshGapBoundsMs: bounds });
    const fast = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger, watchUrl: db.url, refreshGapBoundsMs: bounds });
    slow.start();
    fast.start();
    let writing = true;
    try {
      await waitFor('both listening', async () => slow.listening && fast.listening && slow.reads === 1 && fast.reads === 1);
      // Scraped every 800 ms (a gap of 200 ms) and every 100 ms (the 50 ms bound).
      const scraper = (snapshots: MirrorSnapshots, everyMs: number) => (async () => {
        while (writing) {
          await snapshots.forScrape(10_000);
          await new Promise((resolve) => setTimeout(resolve, everyMs));
        }
      })();
      const scrapers = [scraper(slow, 800), scraper(fast, 100)];
      await new Promise((resolve) => setTimeout(resolve, 1_700)); // two slow intervals known
      const [slowBefore, fastBefore, started] = [slow.reads, fast.reads, Date.now()];
      let written = 0;
      while (Date.now() - started < 3_200) {
        await setLag('m007', ++written);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const elapsed = Date.now() - started;
      writing = false;
      await Promise.all(scrapers);
      const slowReads = slow.reads - slowBefore;
      const fastReads = fast.reads - fastBefore;
      expect(written).toBeGreaterThan(100);
      expect(slowReads).toBeLessThanOrEqual(Math.ceil(elapsed / 200) + 2);
      expect(fastReads).toBeGreaterThan(2 * slowReads);
    } finally {
      writing = false;
      await slow.close();
      await fast.close();
    }
  });

  it('serves a scrape from the cache while a read runs, rather than make it wait for the read', async () => {
    // A read of a large fleet's tables runs for a while; a scrape in it must not wait for it (nor,
    // on a short budget, give up on it and report the catalog down) while the cache is recent.
    const eager = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger, watchUrl: db.url, refreshGapBoundsMs: [0, 0] });
    eager.start();
    const blocker = await db.pool.connect();
    try {
      await waitFor('listening and read', async () => eager.listening && eager.reads >= 1);
      await setLag('m008', 1);
      await waitFor('the cache current', async () => lagOf((await eager.forScrape(10_000)).snapshot, 'm008') === 1);
      // The change feed probes mirror_removals: held locked, the next read blocks there.
      await blocker.query('begin');
      await blocker.query(`lock table "${SCHEMA}".mirror_removals in access exclusive mode`);
      const reads = eager.reads;
      await setLag('m008', 2);
      // Its read runs, and cannot end while the lock is held.
      await waitFor('the read for the change', async () => eager.reads > reads && eager.reading, 10_000, 5);
      const answer = await eager.forScrape(1_000);
      expect(answer.catalogUp).toBe(true);
      expect(lagOf(answer.snapshot, 'm008')).toBe(1);
      await blocker.query('rollback');
      await waitFor('the change read', async () => lagOf((await eager.forScrape(10_000)).snapshot, 'm008') === 2);
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      blocker.release();
      await eager.close();
    }
  });

  it('compresses and joins what a read rebuilt before serving it, while gzip scrapes come', async () => {
    const plain = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger, watchUrl: db.url, refreshGapBoundsMs: [0, 0] });
    const gzip = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger, watchUrl: db.url, refreshGapBoundsMs: [0, 0] });
    plain.start();
    gzip.start();
    try {
      await waitFor('listening and read', async () => plain.listening && gzip.listening && plain.reads >= 1 && gzip.reads >= 1);
      await plain.forScrape(10_000);
      await gzip.forScrape(10_000, true);
      // Per instance: a read may run more than once for one change (a second notification, a
      // periodic read), so what counts is which instance joined and what it joined.
      const joined = new Map<MirrorSnapshots, (readonly Bucket[])[]>([[plain, []], [gzip, []]]);
      for (const s of [plain, gzip]) vi.spyOn(s.gzipFamilies, 'joinAll').mockImplementation(async function (this: GzipFamilies, buckets, ...rest) {
        joined.get(s)!.push(buckets);
        return GzipFamilies.prototype.joinAll.call(this, buckets, ...rest);
      });
      await setLag('m009', 3);
      const read = async (s: MirrorSnapshots) => {
        let snapshot: Snapshot | undefined;
        await waitFor('the change read', async () => lagOf((snapshot = (await s.forScrape(10_000)).snapshot), 'm009') === 3, 5_000, 5);
        return snapshot!.buckets;
      };
      // Every piece made, and joined, ahead by the read; none where no scrape asked for gzip (nor a route compressed).
      const zipped = await read(gzip);
      expect(zipped.flatMap((b) => b.gzip).every((p) => p !== undefined)).toBe(true);
      expect(joined.get(gzip)).toContainEqual(zipped);
      expect((await read(plain)).flatMap((b) => b.gzip).every((p) => p === undefined)).toBe(true);
      expect(joined.get(plain)).toEqual([]);
    } finally {
      await plain.close();
      await gzip.close();
    }
  });

  it('replaces a lost listening connection and misses nothing written meanwhile', async () => {
    const watchers = async () =>
      (await db.pool.query<{ pid: number }>(`select pid from pg_stat_activity
                                             where datname = current_database() and application_name = 'mirrorstate-metrics-watch'`)).rows.map((r) => r.pid);
    const [lost] = await watchers();
    await db.pool.query('select pg_terminate_backend($1)', [lost]);
    // Written while nobody listens: no notification will tell of it.
    await setLag('m005', 3.25);
    await waitFor('listening again', async () => {
      const now = await watchers();
      return now.length === 1 && now[0] !== lost;
    });
    // A scrape would find the barrier clean: only a read on listening again finds the write.
    await waitFor('the write on /metrics', async () => lagOf(await scrape(), 'm005') === 3.25, 5_000, 20);
    // And the new connection hears what comes next.
    await new Promise((resolve) => setTimeout(resolve, GAP_MS));
    const reads = watched.reads;
    await setLag('m005', 4.5);
    await waitFor('the change read without a scrape', async () => watched.reads > reads && !watched.reading, 5_000, 5);
    expect(lagOf(await scrape(), 'm005')).toBe(4.5);
  });
});

describe('the barrier on the listening connection', () => {
  it('sends one query at a time however many scrapes ask at once, and each still covers what committed before it asked', async () => {
    let reported = 0;
    const watch = new CatalogWatch({ url: db.url, schema: SCHEMA, logger, onChange: () => reported++, onListen: () => undefined });
    watch.start();
    try {
      await waitFor('listening', async () => watch.listening);
      // Counts the queries running on the listening connection at once (node-pg would queue an
      // overlapping one, and warn).
      const client = (watch as unknown as { client: pg.Client }).client;
      const query = client.query.bind(client) as (text: string) => Promise<unknown>;
      let running = 0;
      let most = 0;
      (client as unknown as { query: (text: string) => Promise<unknown> }).query = (text) => {
        most = Math.max(most, ++running);
        return query(text).finally(() => running--);
      };
      // Every write notifies once: a barrier asked after `written` commits resolves with as many reported.
      const asked: Promise<void>[] = [];
      let written = 0;
      const ask = (): void => {
        const before = written;
        asked.push(watch.barrier(5_000).then(() => expect(reported).toBeGreaterThanOrEqual(before)));
      };
      for (let round = 0; round < 20; round++) {
        await setLag('m010', round);
        written++;
        for (let i = 0; i < 5; i++) ask();
        // A write while this round's barriers are in flight: those asked after it must cover it too.
        await setLag('m010', round + 0.5);
        written++;
        ask();
      }
      await Promise.all(asked);
      expect(most).toBe(1);
    } finally {
      await watch.close();
    }
  });
});
