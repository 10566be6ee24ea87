/**
 * The fleet page's sparklines: each of a page's mirrors' statuses over the last day, in one
 * statement for the whole page, run inside the page's snapshot transaction (readMirrorPage.ts).
 *
 * Bounded like a mirror's timeline (readTimelines.ts): the window is cut into buckets, one per
 * pixel of the drawing, and each bucket that holds transitions comes back as one row, so a mirror
 * flapping thousands of times a day costs at most two rows per pixel. Cheaper than readTimelines,
 * because the fleet page reads hundreds of mirrors at once and draws them only to the second:
 * - times come back as seconds from the window's start (float8, from the interval's microseconds),
 *   not as RFC 3339 text, and a bucket only says what the drawing needs (how many transitions,
 *   when the first and the last were, and their statuses);
 * - the buckets come from one pass over the (mirror, at, seq) index (transitions_mirror_at_idx,
 *   docs/catalog.md) in its own order, with window functions over that order (`lag`/`lead` of the
 *   bucket): no sort at all, where an aggregate per bucket would sort each bucket. Each bucket comes
 *   back as its first and its last transition (one row when they are the same) and their running
 *   numbers, which give the count: at most two rows per pixel.
 * The status each window opens with is one backward probe of the same index per mirror, and only
 * mirrors whose status changed within the window are read at all: in a fleet that is mostly
 * steady, most rows of a page draw from the mirror's row alone.
 */
import type { PoolClient } from '../db/pool.js';
import type { TimelineWindow } from './readTimelines.js';
import type { SparklineBucket, SparklineCache } from './sparklineCache.js';
import type { MirrorState } from './views.js';
import { tables } from './sql.js';


export interface Sparkline {
  /** The status at the window's start (the newest transition at or before it), if any. */
  start: string | null;
  /** In time order. */
  buckets: SparklineBucket[];
}

function statement(schema: string): string {
  const t = tables(schema);
  return `
    select mirror, bucket, n, to_status as status, date_part('epoch', at - $2::timestamptz) as at
      from (select mirror, bucket, to_status, at, row_number() over w as n,
                   coalesce(lag(bucket) over w <> bucket, true) as first,
                   coalesce(lead(bucket) over w <> bucket, true) as last
              from (select mirror, at, seq, to_status,
                           case when at > $3::timestamptz then $4::int
                                else least($4::int - 1, floor(date_part('epoch', at - $2::timestamptz) / $5::float8))::int end as bucket
                      from ${t.transitions}
                     where mirror = any($1::text[]) and at > $2::timestamptz) as x
            window w as (partition by mirror order by at, seq)) as y
     where first or last
    union all
    select p.mirror, -1, 0, s.to_status, null
      from unnest($1::text[]) as p(mirror)
      cross join lateral (
        select to_status from ${t.transitions} t
         where t.mirror = p.mirror and t.at <= $2::timestamptz
         order by t.at desc, t.seq desc limit 1) as s`;
}

interface Row { mirror: string; bucket: number; n: string; status: string; at: number | null }

/**
 * The sparklines of `mirrors` (rows of the same snapshot) over `window`; a mirror without
 * transitions up to its end is absent. A mirror whose status began before the window has had that
 * status throughout it: its row says so (status_since is its newest transition's time, and the
 * status that transition's). One whose read `cache` kept for its transitions_total draws from that
 * (sparklineCache.ts). Only the others are read, and their exact reads kept.
 */
export async function readSparklines(
  client: PoolClient, schema: string, mirrors: readonly Pick<MirrorState, 'mirror' | 'status' | 'statusSince' | 'transitionsTotal'>[],
  window: TimelineWindow, cache?: SparklineCache,
): Promise<Map<string, Sparkline>> {
  const sparklines = new Map<string, Sparkline>();
  const fromUs = Date.parse(window.from) * 1000;
  const toUs = Date.parse(window.to) * 1000;
  // Times as the catalog writes them (UTC, microseconds: catalog/sql.ts), compared as text.
  const fromText = `${window.from.slice(0, -1)}000Z`;
  const toRead: string[] = [];
  const totals = new Map<string, number>();
  for (const m of mirrors) {
    if (m.statusSince < fromText) {
      sparklines.set(m.mirror, { start: m.status, buckets: [] });
      continue;
    }
    const kept = cache?.sparkline(m.mirror, m.transitionsTotal, fromUs, toUs, window.buckets);
    if (kept) sparklines.set(m.mirror, kept);
    else {
      toRead.push(m.mirror);
      totals.set(m.mirror, m.transitionsTotal);
    }
  }
  if (toRead.length === 0) return sparklines;
  const seconds = (toUs - fromUs) / 1e6;
  const { rows } = await client.query<Row>(statement(schema), [toRead, window.from, window.to, window.buckets, seconds / window.buckets]);
  const byMirror = new Map<string, { start: string | null; edges: Row[] }>();
  for (const r of rows) {
    let m = byMirror.get(r.mirror);
    if (!m) {
      m = { start: null, edges: [] };
      byMirror.set(r.mirror, m);
    }
    if (r.bucket < 0) m.start = r.status;
    else m.edges.push(r);
  }
  for (const [mirror, { start, edges }] of byMirror) {
    // In time order: a bucket's first transition, then its last (one row when it is both).
    edges.sort((a, b) => Number(a.n) - Number(b.n));
    const buckets: SparklineBucket[] = [];
    // Transitions ahead of the clock (bucket `buckets`) are not drawn, and keep the read from being kept.
    let ahead = false;
    for (let i = 0; i < edges.length; i++) {
      const first = edges[i] as Row;
      const next = edges[i + 1];
      const last = next?.bucket === first.bucket ? (i++, next) : first;
      const count = Number(last.n) - Number(first.n) + 1;
      if (first.bucket >= window.buckets) ahead = true;
      else buckets.push({ count, first: Number(first.at), last: Number(last.at), firstStatus: first.status, status: last.status });
    }
    sparklines.set(mirror, { start, buckets });
    const total = totals.get(mirror);
    if (cache && !ahead && total !== undefined) {
      const us = (seconds: number) => fromUs + Math.round(seconds * 1e6);
      const one = (at: number, status: string) => ({ count: 1, firstUs: us(at), lastUs: us(at), firstStatus: status, status });
      // A pixel's one or two transitions are kept each on its own, so a later window can fall between them.
      cache.keep(mirror, total, fromUs, start, buckets.flatMap((b) => b.count === 1 ? [one(b.first, b.status)]
        : b.count === 2 ? [one(b.first, b.firstStatus), one(b.last, b.status)]
          : [{ count: b.count, firstUs: us(b.first), lastUs: us(b.last), firstStatus: b.firstStatus, status: b.status }]));
    }
  }
  return sparklines;
}
