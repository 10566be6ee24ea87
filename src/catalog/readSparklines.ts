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
 *   pixel): no sort at all, where an aggregate per bucket would sort each bucket. Each bucket comes
 *   back as its first and its last transition (one row when they are the same) and their running
 *   numbers, which give the count: at most two rows per pixel;
 * - a mirror whose transitions_total (every transition it ever had; trimming never lowers it) is
 *   no more than those two rows per pixel cannot have more in the window: its transitions there
 *   are read as they are, from the same index without the window functions, which cost more than
 *   the scan. Most mirrors change a few times a day, so most reads are of this kind.
 * The transitions of the window's first pixel, up to SPARKLINE_EXACT_HEAD of them, come back each
 * on its own: a kept read (sparklineCache.ts) then serves the window for a while before the
 * window's start falls inside a group, where a busy mirror's would at once.
 * The status each window opens with is one backward probe of the same index per mirror, and only
 * mirrors whose status changed within the window are read at all: in a fleet that is mostly
 * steady, most rows of a page draw from the mirror's row alone.
 */
import type { PoolClient } from '../db/pool.js';
import type { TimelineWindow } from './readTimelines.js';
import { drawGroups, type KeptGroup, type Sparkline, type SparklineCache } from './sparklineCache.js';
import type { MirrorState } from './views.js';
import { tables } from './sql.js';

export type { Sparkline } from './sparklineCache.js';

/** Transitions of the window's first pixel read each on its own; the rest of that pixel is one group. */
export const SPARKLINE_EXACT_HEAD = 100;

function statement(schema: string): string {
  const t = tables(schema);
  return `
    select mirror, n, case when pixel = 0 and n <= $6::int then -n else pixel end as bucket, to_status as status,
           date_part('epoch', at - $2::timestamptz) as at
      from (select mirror, at, to_status, pixel, row_number() over w as n, lag(pixel) over w as before, lead(pixel) over w as after
              from (select mirror, at, seq, to_status,
                           case when at > $3::timestamptz then $4::int
                                else least($4::int - 1, floor(date_part('epoch', at - $2::timestamptz) / $5::float8))::int end as pixel
                      from ${t.transitions}
                     where mirror = any($1::text[]) and at > $2::timestamptz) as x
            window w as (partition by mirror order by at, seq)) as y
     where before is distinct from pixel or after is distinct from pixel or (pixel = 0 and n <= $6::int + 1)
    union all
    select mirror, seq, null, to_status, date_part('epoch', at - $2::timestamptz)
      from ${t.transitions}
     where mirror = any($7::text[]) and at > $2::timestamptz
    union all
    select p.mirror, 0, null, s.to_status, null
      from unnest($1::text[] || $7::text[]) as p(mirror)
      cross join lateral (
        select to_status from ${t.transitions} t
         where t.mirror = p.mirror and t.at <= $2::timestamptz
         order by t.at desc, t.seq desc limit 1) as s`;
}

/**
 * A transition of a mirror read in pixels: n its running number in the window, bucket its pixel
 * (≥ buckets: ahead of the clock; −n: in the exact head). One of a mirror read whole: no bucket, n
 * its seq. The probe's row (the status the window opens with): no `at`.
 */
interface Row { mirror: string; n: number | string; bucket: number | null; status: string; at: number | null }

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
  // Mirrors that cannot have more transitions in the window than a read in pixels would return
  // are read whole (no window functions); the others in pixels.
  const whole: string[] = [];
  const inPixels: string[] = [];
  const totals = new Map<string, number>();
  for (const m of mirrors) {
    if (m.statusSince < fromText) {
      sparklines.set(m.mirror, { start: m.status, buckets: [] });
      continue;
    }
    const kept = cache?.sparkline(m.mirror, m.transitionsTotal, fromUs, toUs, window.buckets);
    if (kept) sparklines.set(m.mirror, kept);
    else {
      (m.transitionsTotal <= 2 * window.buckets ? whole : inPixels).push(m.mirror);
      totals.set(m.mirror, m.transitionsTotal);
    }
  }
  if (totals.size === 0) return sparklines;
  const seconds = (toUs - fromUs) / 1e6;
  const { rows } = await client.query<Row>(statement(schema),
    [inPixels, window.from, window.to, window.buckets, seconds / window.buckets, SPARKLINE_EXACT_HEAD, whole]);
  const byMirror = new Map<string, { start: string | null; edges: Row[] }>();
  for (const r of rows) {
    let m = byMirror.get(r.mirror);
    if (!m) {
      m = { start: null, edges: [] };
      byMirror.set(r.mirror, m);
    }
    if (r.at === null) m.start = r.status;
    else m.edges.push(r);
  }
  const us = (seconds: number) => fromUs + Math.round(seconds * 1e6);
  const one = (at: number, status: string): KeptGroup => ({ count: 1, firstUs: us(at), lastUs: us(at), firstStatus: status, status });
  for (const [mirror, { start, edges }] of byMirror) {
    // A pixel's one or two transitions each on its own, so a later window can fall between them.
    const groups: KeptGroup[] = [];
    // Transitions ahead of the clock are not drawn, and keep the read from being kept.
    let ahead = false;
    if (edges[0]?.bucket === null) {
      // Read whole: each transition on its own, in version order.
      edges.sort((a, b) => (a.at as number) - (b.at as number) || Number(a.n) - Number(b.n));
      for (const r of edges) {
        const g = one(r.at as number, r.status);
        if (g.firstUs > toUs) ahead = true;
        else groups.push(g);
      }
    } else {
      // In time order: a bucket's first transition, then its last (one row when it is both).
      edges.sort((a, b) => Number(a.n) - Number(b.n));
      for (let i = 0; i < edges.length; i++) {
        const first = edges[i] as Row;
        const next = edges[i + 1];
        const last = next?.bucket === first.bucket ? (i++, next) : first;
        const count = Number(last.n) - Number(first.n) + 1;
        if ((first.bucket as number) >= window.buckets) ahead = true;
        else if (count === 1) groups.push(one(first.at as number, first.status));
        else if (count === 2) groups.push(one(first.at as number, first.status), one(last.at as number, last.status));
        else groups.push({ count, firstUs: us(first.at as number), lastUs: us(last.at as number), firstStatus: first.status, status: last.status });
      }
    }
    // Every group is after the window's start and, ahead of the clock left out, not after its end: always drawn.
    sparklines.set(mirror, drawGroups(start, groups, fromUs, toUs, window.buckets) ?? { start, buckets: [] });
    const total = totals.get(mirror);
    if (cache && !ahead && total !== undefined) cache.keep(mirror, total, fromUs, start, groups);
  }
  return sparklines;
}
