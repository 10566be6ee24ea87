/**
 * The fleet page's sparkline read against a real catalog (catalog/readSparklines.ts), and the reads
 * kept between views (catalog/sparklineCache.ts): a kept read draws what a new read of the same
 * snapshot draws, window after window, and a busy mirror's read is not made again on every view.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/catalog/migrate.js';
import { readSparklines, SPARKLINE_EXACT_HEAD } from '../../src/catalog/readSparklines.js';
import { SparklineCache } from '../../src/catalog/sparklineCache.js';
import type { PoolClient } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const SCHEMA = 'sparkline_test';
const DAY_MS = 86_400_000;
/** The first window's start; every transition below is after it. */
const T0 = Date.parse('2026-11-20T00:00:00.000Z');
const BUCKETS = 120;
const PIXEL_MS = DAY_MS / BUCKETS;
const BUSY = 'busy_cdc';
const CALM = 'calm_cdc';
/** More transitions in the window's first pixel than are read each on its own. */
const BUSY_TRANSITIONS = SPARKLINE_EXACT_HEAD + 400;

let db: TestDatabase;
const at = (ms: number) => new Date(T0 + ms).toISOString();
const window = (startMs: number) => ({ from: at(startMs), to: at(startMs + DAY_MS), buckets: BUCKETS });

beforeAll(async () => {
  db = await createTestDatabase('sparklines');
  await migrate(db.pool, SCHEMA, createLogger('silent'));
  // busy: a transition every 1.5 s from 30 s into the window, well past its first pixel (12 min);
  // calm: setup before the window, then one transition an hour.
  await db.pool.query(
    `insert into ${SCHEMA}.transitions (mirror, from_status, to_status, at, seq)
     select $1, case when k > 1 then case when k % 2 = 0 then 'running' else 'failed' end end,
            case when k % 2 = 0 then 'failed' else 'running' end, $2::timestamptz + make_interval(secs => 30 + k * 1.5), 0
       from generate_series(1, $3::int) as k
     union all
     select $4, null, 'setup', $2::timestamptz - interval '1 hour', 0
     union all
     select $4, case when k = 1 then 'setup' when k % 2 = 0 then 'running' else 'paused' end,
            case when k % 2 = 0 then 'paused' else 'running' end, $2::timestamptz + make_interval(hours => k), 0
       from generate_series(1, 20) as k`,
    [BUSY, at(0), BUSY_TRANSITIONS, CALM]);
}, 60_000);
afterAll(async () => db?.drop());

/** The page's rows for the two mirrors: their status changed within every window below. */
const rows = [
  { mirror: BUSY, status: 'failed', statusSince: at(30_000 + BUSY_TRANSITIONS * 1_500).replace('Z', '000Z'), transitionsTotal: BUSY_TRANSITIONS },
  { mirror: CALM, status: 'paused', statusSince: at(20 * 3_600_000).replace('Z', '000Z'), transitionsTotal: 21 },
];

/** readSparklines on a client that counts the statements it runs. */
async function read(w: ReturnType<typeof window>, cache?: SparklineCache) {
  const client = await db.pool.connect();
  let statements = 0;
  const counting = { query: (...args: Parameters<PoolClient['query']>) => (statements++, client.query(...args)) } as unknown as PoolClient;
  try {
    return { sparklines: await readSparklines(counting, SCHEMA, rows, w, cache), statements };
  } finally {
    client.release();
  }
}

describe('readSparklines', () => {
  it('reads each mirror once a page, bounded by the pixels, and opens the window with the status before it', async () => {
    const { sparklines, statements } = await read(window(0));
    expect(statements).toBe(1);
    const busy = sparklines.get(BUSY);
    const calm = sparklines.get(CALM);
    expect(calm?.start).toBe('setup');
    expect(calm?.buckets.map((b) => [b.count, b.first, b.status])).toEqual(
      Array.from({ length: 20 }, (_, i) => [1, (i + 1) * 3_600, i % 2 ? 'paused' : 'running']));
    expect(busy?.start).toBeNull();
    // Every transition counted, at most one bucket per pixel: 1.5 s apart, 480 a pixel.
    expect(busy?.buckets.reduce((n, b) => n + b.count, 0)).toBe(BUSY_TRANSITIONS);
    expect(busy?.buckets).toHaveLength(Math.ceil((30_000 + BUSY_TRANSITIONS * 1_500) / PIXEL_MS));
    expect(busy?.buckets[0]).toMatchObject({ first: 31.5, firstStatus: 'running' });
  });

  it('draws a later window from the kept read as a new read of it would, and reads a busy mirror again only now and then', async () => {
    const cache = new SparklineCache();
    expect((await read(window(0), cache)).statements).toBe(1);
    // The window slides by 90 s a view through two pixels; nothing changes in the catalog.
    const views: number[] = [];
    const reads: number[] = [];
    for (let startMs = 90_000; startMs <= 2 * PIXEL_MS; startMs += 90_000) {
      const kept = await read(window(startMs), cache);
      const fresh = await read(window(startMs));
      expect(kept.sparklines, `window from ${at(startMs)}`).toEqual(fresh.sparklines);
      views.push(startMs);
      if (kept.statements > 0) reads.push(startMs);
    }
    // The window's start moves into the busy mirror's first pixel at once, but its first
    // SPARKLINE_EXACT_HEAD transitions there were read each on its own: the next views are kept.
    expect(reads).not.toContain(90_000);
    expect(reads.length).toBeLessThanOrEqual(views.length / 4);
  });
});
