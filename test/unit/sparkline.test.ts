/** From a sparkline read (or a kept one) to what the fleet page draws (http/page/sparkline.ts, catalog/sparklineCache.ts): pure, table-driven. */
import { describe, expect, it } from 'vitest';
import type { Sparkline } from '../../src/catalog/readSparklines.js';
import type { SparklineBucket } from '../../src/catalog/sparklineCache.js';
import { SparklineCache } from '../../src/catalog/sparklineCache.js';
import { sparklinePeriods, sparklineRenderer } from '../../src/http/page/sparkline.js';

// A window of 100 s drawn 10 pixels wide: a pixel is 10 s.
const WINDOW = { from: '2026-12-01T00:00:00.000Z', to: '2026-12-01T00:01:40.000Z', buckets: 10 };
const one = (s: number, status: string): SparklineBucket => ({ count: 1, first: s, last: s, firstStatus: status, status });
const line = (start: string | null, buckets: SparklineBucket[]): Sparkline => ({ start, buckets });
const drawn = (s: Sparkline | undefined) =>
  sparklinePeriods(s, 100, 10).periods.map((p) => `${p.status ?? `merged×${p.periods}`} ${p.from}-${p.to}`);

describe('sparklinePeriods', () => {
  it.each([
    ['no history', undefined, []],
    ['only a status from before the window', line('running', []), ['running 0-100']],
    ['a first transition inside the window', line(null, [one(30, 'setup'), one(60, 'running')]), ['setup 30-60', 'running 60-100']],
    ['a lone narrow period keeps its colour', line('running', [one(40, 'failed'), one(43, 'running')]), ['running 0-40', 'failed 40-43', 'running 43-100']],
    ['two transitions in one pixel: the period between keeps its colour',
      line('running', [{ count: 2, first: 51, last: 54, firstStatus: 'failed', status: 'running' }]), ['running 0-51', 'failed 51-54', 'running 54-100']],
    ['more in one pixel: one mark', line('running', [{ count: 4, first: 51, last: 58, firstStatus: 'failed', status: 'running' }]),
      ['running 0-51', 'merged×3 51-58', 'running 58-100']],
    ['narrow periods across pixels merge, and a mark stops growing at a pixel',
      line('running', [one(18, 'failed'), one(21, 'running'), one(24, 'failed'), one(27, 'running'), one(30, 'failed'), one(60, 'running')]),
      ['running 0-18', 'merged×4 18-30', 'failed 30-60', 'running 60-100']],
  ])('%s', (_name, input, expected) => {
    expect(drawn(input)).toEqual(expected);
  });
});

describe('sparklineRenderer', () => {
  const render = sparklineRenderer(WINDOW);

  it('draws one path per status, the least time on top, and one title for the row', () => {
    const svg = render(line('running', [one(20.4, 'failed'), one(30.6, 'running'), one(80, 'paused')])).text;
    expect(svg.match(/<path [^>]*>/g)).toEqual([
      '<path class="s-running" d="M0 0h20v1h-20zM31 0h49v1h-49z"/>',
      '<path class="s-paused" d="M80 0h20v1h-20z"/>',
      '<path class="s-failed" d="M20 0h11v1h-11z"/>',
    ]);
    expect(svg).toContain('<title>last 24 h, 4 status periods: running 1 min 9 s, paused 20 s, failed 10 s</title>');
    expect(svg).toContain('viewBox="0 0 100 1"');
  });

  it('draws merged marks last, and says how many periods they stand for', () => {
    const svg = render(line('running', [{ count: 4, first: 51, last: 58, firstStatus: 'failed', status: 'running' }])).text;
    expect(svg).toMatch(/<path class="merged" d="M51 0h7v1h-7z"\/><\/svg>$/);
    expect(svg).toContain('5 status periods: running 1 min 33 s, 3 shorter than 10 s drawn merged 7 s');
  });

  it('says when nothing was recorded, and keeps a status as text', () => {
    expect(render(undefined).text).toContain('<title>last 24 h: no status recorded</title>');
    expect(render(line('"><script>', [])).text).toContain('class="s-&quot;&gt;&lt;script&gt;"');
  });
});

describe('SparklineCache', () => {
  // Kept for a window from 1,000 s: snapshot at 1,010 s, failed at 1,030 s, running at 1,031.5 s,
  // then 7 transitions from 1,050 s to 1,052 s kept as one group ending in paused.
  const S = 1e6;
  const one = (at: number, status: string) => ({ count: 1, firstUs: at * S, lastUs: at * S, firstStatus: status, status });
  const kept = () => {
    const cache = new SparklineCache(2);
    cache.keep('m', 11, 1000 * S, 'setup', [
      one(1010, 'snapshot'), one(1030, 'failed'), one(1031.5, 'running'),
      { count: 7, firstUs: 1050 * S, lastUs: 1052 * S, firstStatus: 'failed', status: 'paused' },
    ]);
    return cache;
  };

  it('draws a later window from the kept read: what left the window is the status it opens with', () => {
    expect(kept().sparkline('m', 11, 1020 * S, 1120 * S, 10)).toEqual({
      start: 'snapshot',
      buckets: [
        { count: 2, first: 10, last: 11.5, firstStatus: 'failed', status: 'running' },
        { count: 7, first: 30, last: 32, firstStatus: 'failed', status: 'paused' },
      ],
    });
    expect(kept().sparkline('m', 11, 1000 * S, 1100 * S, 10)?.buckets.map((b) => [b.first, b.count])).toEqual([[10, 1], [30, 2], [50, 7]]);
    // A window that starts after the group: all of it is before, its last status the one it opens with.
    expect(kept().sparkline('m', 11, 1060 * S, 1160 * S, 10)).toEqual({ start: 'paused', buckets: [] });
  });

  it('reads again when the transitions changed, the window starts earlier or inside a group, or a transition is ahead of it', () => {
    expect(kept().sparkline('m', 12, 1020 * S, 1120 * S, 10)).toBeUndefined();
    expect(kept().sparkline('m', 11, 999 * S, 1099 * S, 10)).toBeUndefined();
    expect(kept().sparkline('m', 11, 1000 * S, 1030 * S, 10)).toBeUndefined();
    expect(kept().sparkline('other', 11, 1020 * S, 1120 * S, 10)).toBeUndefined();
    // A window starting inside the group cannot split it.
    expect(kept().sparkline('m', 11, 1051 * S, 1151 * S, 10)).toBeUndefined();
  });

  it('keeps at most its size of mirrors, dropping the oldest', () => {
    const cache = kept();
    cache.keep('n', 1, 0, null, []);
    cache.keep('o', 1, 0, null, []);
    expect(cache.size).toBe(2);
    expect(cache.sparkline('m', 11, 1020 * S, 1120 * S, 10)).toBeUndefined();
    expect(cache.sparkline('o', 1, 0, 100 * S, 10)).toEqual({ start: null, buckets: [] });
  });
});
