/** From a timeline read to the segments drawn (http/page/timeline.ts): pure, table-driven. */
import { describe, expect, it } from 'vitest';
import type { MirrorTimeline, TimelineBucket } from '../../src/catalog/readTimelines.js';
import { timelineSegments } from '../../src/http/page/timeline.js';

// A window of 100 s drawn 10 units wide: a unit (pixel) is 10 s.
const WINDOW = { from: '2026-12-01T00:00:00.000Z', to: '2026-12-01T00:01:40.000Z', buckets: 10 };
const t = (s: number) => new Date(Date.parse(WINDOW.from) + s * 1000).toISOString();
const one = (s: number, status: string): TimelineBucket => ({ bucket: Math.floor(s / 10), count: 1, firstStatus: status, firstAt: t(s), lastStatus: status, lastAt: t(s) });
const timeline = (start: string | null, buckets: TimelineBucket[]): MirrorTimeline =>
  ({ window: WINDOW, start: start ? { status: start, at: t(-500) } : null, buckets });
const drawn = (tl: MirrorTimeline | undefined) =>
  timelineSegments(tl, WINDOW).segments.map((s) => `${s.status ?? `merged×${s.periods}`} ${(s.fromMs - Date.parse(WINDOW.from)) / 1000}-${(s.toMs - Date.parse(WINDOW.from)) / 1000}`);

describe('timelineSegments', () => {
  it.each([
    ['no history', undefined, []],
    ['only a status from before the window', timeline('running', []), ['running 0-100']],
    ['a first transition inside the window', timeline(null, [one(30, 'setup'), one(60, 'running')]), ['setup 30-60', 'running 60-100']],
    ['a lone narrow period keeps its colour', timeline('running', [one(40, 'failed'), one(43, 'running')]), ['running 0-40', 'failed 40-43', 'running 43-100']],
    ['several transitions in one pixel: one mark', timeline('running', [{ ...one(51, 'failed'), count: 4, lastStatus: 'running', lastAt: t(58) }]),
      ['running 0-51', 'merged×3 51-58', 'running 58-100']],
    ['narrow periods across pixels merge, and a mark stops growing at a pixel',
      timeline('running', [one(18, 'failed'), one(21, 'running'), one(24, 'failed'), one(27, 'running'), one(30, 'failed'), one(60, 'running')]),
      ['running 0-18', 'merged×4 18-30', 'failed 30-60', 'running 60-100']],
  ])('%s', (_name, input, expected) => {
    expect(drawn(input)).toEqual(expected);
  });

  it('counts every period, and those drawn merged', () => {
    const r = timelineSegments(timeline('running', [one(18, 'failed'), one(21, 'running'), one(24, 'failed'), one(27, 'running'), one(30, 'failed')]), WINDOW);
    expect([r.periods, r.merged, r.marks]).toEqual([6, 4, 1]);
    expect(r.segments[0]?.since).toBe(t(-500));
  });
});
