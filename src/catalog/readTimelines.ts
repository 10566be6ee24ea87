/**
 * Status timelines: what a mirror's status was over a window of time, from its transitions, for
 * a mirror's page (the fleet page's sparklines read less: readSparklines.ts). One statement for any number
 * of mirrors, run inside the caller's snapshot transaction, so a timeline describes the same moment
 * as the rest of the page.
 *
 * Bounded whatever the history: the window is cut into buckets (one per pixel of the drawing) and
 * each bucket comes back as one row, its first and last transition and how many it holds. A bucket
 * with one transition is an exact boundary; one with several holds status periods narrower than a
 * pixel, which the drawing merges into one mark (http/page/timeline.ts). So a window with 50,000
 * transitions returns at most one row per pixel, and the database reads its entries from the
 * (mirror, at, seq) index alone (migrations/0007_transitions_by_time.sql).
 */
import type { PoolClient } from '../db/pool.js';
import { tables, UTC_MICROS } from './sql.js';

export interface TimelineWindow {
  /** RFC 3339; the window is (from, to]. */
  from: string;
  to: string;
  /** Buckets across the window: the drawing's width in pixels. */
  buckets: number;
}

export interface TimelineBucket {
  /** 0 … buckets − 1, from the window's start. */
  bucket: number;
  /** Transitions in the bucket. */
  count: number;
  firstStatus: string;
  firstAt: string;
  lastStatus: string;
  lastAt: string;
}

export interface MirrorTimeline {
  window: TimelineWindow;
  /** The newest transition at or before the window's start: the status the window opens with. */
  start: { status: string; at: string } | null;
  /** In time order. */
  buckets: TimelineBucket[];
}

function statement(schema: string): string {
  const t = tables(schema);
  return `
    select p.mirror, -1 as bucket, 1 as count, s.to_status as first_status, ${UTC_MICROS('s.at')} as first_at,
           s.to_status as last_status, ${UTC_MICROS('s.at')} as last_at
      from unnest($1::text[]) as p(mirror)
      cross join lateral (
        select to_status, at from ${t.transitions} t
         where t.mirror = p.mirror and t.at <= $2::timestamptz
         order by t.at desc, t.seq desc limit 1) as s
    union all
    select mirror, least($4::int - 1, floor(extract(epoch from at - $2::timestamptz) / $5::float8))::int, count(*)::int,
           (array_agg(to_status order by at, seq))[1], ${UTC_MICROS('min(at)')},
           (array_agg(to_status order by at desc, seq desc))[1], ${UTC_MICROS('max(at)')}
      from ${t.transitions}
     where mirror = any($1::text[]) and at > $2::timestamptz and at <= $3::timestamptz
     group by 1, 2
    order by 1, 2`;
}

/** The timelines of `mirrors` over `window`; a mirror without transitions up to its end is absent. */
export async function readTimelines(client: PoolClient, schema: string, mirrors: string[], window: TimelineWindow): Promise<Map<string, MirrorTimeline>> {
  const seconds = (Date.parse(window.to) - Date.parse(window.from)) / 1000;
  const { rows } = await client.query(statement(schema), [mirrors, window.from, window.to, window.buckets, seconds / window.buckets]);
  const timelines = new Map<string, MirrorTimeline>();
  for (const r of rows) {
    let timeline = timelines.get(r.mirror);
    if (!timeline) {
      timeline = { window, start: null, buckets: [] };
      timelines.set(r.mirror, timeline);
    }
    if (r.bucket < 0) timeline.start = { status: r.first_status, at: r.first_at };
    else {
      timeline.buckets.push({
        bucket: r.bucket, count: r.count, firstStatus: r.first_status, firstAt: r.first_at, lastStatus: r.last_status, lastAt: r.last_at,
      });
    }
  }
  return timelines;
}
