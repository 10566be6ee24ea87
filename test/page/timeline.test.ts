/**
 * The status timelines in a real browser: a mirror page's timeline and the fleet page's sparklines,
 * for mirrors whose history was published through the queue and applied by the daemon. What
 * Chromium built must have one segment per status period in the window, in order, each with the
 * status and the exact boundaries of the catalog's transitions (the window's start and end, read
 * from the drawing, decide which transitions fall in it): on a mirror's page from each segment's
 * data attributes, on the fleet page from the sparkline's geometry itself (seconds from the
 * window's start, to the second). A history denser than the drawing's pixels is merged into marks
 * that still account for every period. Hostile names stay text.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpDom, evaluateInPage } from '../helpers/chromium.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { insertJobs, startProducer } from '../helpers/queue.js';
import { SCHEMA } from '../reads/support.js';
import { headingName, listedRows, unescapeHtml } from './support.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const HOSTILE = `<img src=x onerror="document.title='pwned'"> "timeline" & <script>document.title='pwned'</script>`;
const STEADY = 'steady_cdc';
const BURST = 'burst_cdc';
const BLIP = 'blip_cdc';
const QUIET = 'quiet_cdc';

let db: TestDatabase;
let daemon: DaemonProcess;
let producer: PgBoss;
const t0 = Date.now();
const iso = (ms: number, micros = 0) => `${new Date(t0 - ms).toISOString().slice(0, -1)}${String(micros).padStart(3, '0')}Z`;

/** A known history: older than every window, across the 7-day and 24-hour edges, and recent. */
const HISTORY: [number, string][] = [
  [10 * DAY, 'setup'], [6 * DAY, 'snapshot'], [5 * DAY + 3 * HOUR, 'running'], [2 * DAY + 3 * HOUR, 'failed'],
  [2 * DAY, 'running'], [3 * HOUR, 'paused'], [90 * 60_000, 'running'],
];
/**
 * A minute of `failed` between hours of `running`: narrower than a sparkline's pixel (12 minutes),
 * alone, and both its transitions in one pixel's bucket (the middle of the 110th of 120 when the
 * page is read within 6 minutes of t0), which the catalog read returns as one row.
 */
const BLIP_HISTORY: [number, string][] = [[5 * HOUR, 'running'], [114 * 60_000, 'failed'], [113 * 60_000, 'running']];
/** No change in the last 24 hours: its sparkline is drawn from its row, without reading transitions. */
const QUIET_HISTORY: [number, string][] = [[3 * DAY, 'setup'], [2 * DAY, 'running']];
/** 3,000 transitions a second apart within an hour two hours ago: far more than one per pixel. */
const BURST_TRANSITIONS = 3_000;

interface Rect { status: string; from: string; to: string; periods: number }

function attribute(tag: string, name: string): string | undefined {
  const match = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  return match ? unescapeHtml(match[1] ?? '') : undefined;
}

/** The segments of one SVG, in document order. */
function rects(svg: string): Rect[] {
  return [...svg.matchAll(/<rect [^>]*class="seg[^"]*"[^>]*>/g)].map(([tag]) => ({
    status: attribute(tag, 'data-status') ?? '',
    from: attribute(tag, 'data-from') ?? '',
    to: attribute(tag, 'data-to') ?? '',
    periods: Number(attribute(tag, 'data-periods') ?? 1),
  }));
}

function svgs(dom: string, cls: string): string[] {
  return [...dom.matchAll(new RegExp(`<svg class="${cls}"[\\s\\S]*?</svg>`, 'g'))].map(([svg]) => svg);
}

/** What the catalog says the window holds: the status at its start, then each transition in it. */
async function expected(mirror: string, from: string, to: string): Promise<Rect[]> {
  const utc = (c: string) => `to_char(${c} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
  const { rows } = await db.pool.query<{ status: string; at: string }>(
    `(select to_status as status, ${utc('at')} as at, 0 as k from ${SCHEMA}.transitions
       where mirror = $1 and at <= $2 order by at desc, seq desc limit 1)
     union all
     (select to_status, ${utc('at')}, 1 from ${SCHEMA}.transitions where mirror = $1 and at > $2 and at <= $3 order by at, seq)
     order by k, at`, [mirror, from, to]);
  return rows.map((r, i) => ({ status: r.status, from: i === 0 && r.at <= from ? from : r.at, to: rows[i + 1]?.at ?? to, periods: 1 }));
}

/**
 * Shown against expected: a clean segment is the next period exactly; a merged mark of p periods
 * spans exactly the next p periods (from the first's start to the last's end). Answers how many
 * marks there were.
 */
function matchPeriods(shown: Rect[], want: Rect[]): number {
  let k = 0;
  let marks = 0;
  for (const [i, rect] of shown.entries()) {
    if (rect.status === 'merged') {
      marks++;
      expect(rect.periods, `mark ${i}`).toBeGreaterThan(1);
      expect({ from: rect.from, to: rect.to }, `mark ${i}`).toEqual({ from: want[k]?.from, to: want[k + rect.periods - 1]?.to });
    } else {
      expect(rect, `segment ${i}`).toEqual(want[k]);
    }
    k += rect.periods;
  }
  expect(k).toBe(want.length);
  return marks;
}

interface Piece { status: string; from: number; to: number }

/**
 * A sparkline's pieces in time order: each `M<x> 0h<w>v1h-<w>z` of a status's path is one period,
 * x and w in seconds from the window's start; a `merged` path's pieces are merged marks.
 */
function pieces(svg: string): Piece[] {
  const all = [...svg.matchAll(/<path class="(?:s-)?([^"]+)" d="([^"]*)"/g)].flatMap(([, status, d]) =>
    [...(d ?? '').matchAll(/M(\d+) 0h(\d+)v1h-\2z/g)].map(([, x, w]) => ({ status: status ?? '', from: Number(x), to: Number(x) + Number(w) })));
  // Every piece of every path is a period (the whole d is made of them).
  expect(all.length).toBe([...svg.matchAll(/ d="([^"]*)"/g)].reduce((n, [, d]) => n + (d ?? '').split('M').length - 1, 0));
  return all.sort((a, b) => a.from - b.from || a.to - b.to);
}

/** The catalog's periods in a sparkline's units: seconds from the window's start, rounded as drawn. */
function inSeconds(want: Rect[], from: string): Piece[] {
  const at = (iso: string) => Math.round((Date.parse(iso) - Date.parse(from)) / 1000);
  return want.map((r) => ({ status: r.status, from: at(r.from), to: at(r.to) }));
}

/** Like matchPeriods for a sparkline: a merged mark spans whole periods, from one's start to a later one's end. */
function matchPieces(shown: Piece[], want: Piece[]): number {
  let k = 0;
  let marks = 0;
  for (const [i, piece] of shown.entries()) {
    if (piece.status === 'merged') {
      marks++;
      expect(piece.from, `mark ${i}`).toBe(want[k]?.from);
      const end = want.findIndex((p, j) => j > k && p.to === piece.to);
      expect(end, `mark ${i} ends where a period ends`).toBeGreaterThan(k);
      k = end + 1;
    } else {
      expect(piece, `segment ${i}`).toEqual(want[k]);
      k++;
    }
  }
  expect(k).toBe(want.length);
  return marks;
}

const page = (path: string) => dumpDom(new URL(path, `${daemon.url}/`).href);

beforeAll(async () => {
  db = await createTestDatabase('page_timeline');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  producer = await startProducer(db.url);
  const updates = [
    ...HISTORY.map(([ago, status], i) => ({ mirror: STEADY, status, observedAt: iso(ago, i), seq: i })),
    ...HISTORY.map(([ago, status]) => ({ mirror: HOSTILE, status, observedAt: iso(ago + 1_000) })),
    ...BLIP_HISTORY.map(([ago, status]) => ({ mirror: BLIP, status, observedAt: iso(ago) })),
    ...QUIET_HISTORY.map(([ago, status]) => ({ mirror: QUIET, status, observedAt: iso(ago) })),
    ...Array.from({ length: BURST_TRANSITIONS }, (_, i) => ({
      mirror: BURST, status: i % 2 ? 'failed' : 'running', observedAt: iso(3 * HOUR - i * 1_000),
    })),
  ];
  // Jobs of up to 1,000 updates, out of order: the daemon applies them in version order.
  const jobs = [];
  for (let i = 0; i < updates.length; i += 1_000) jobs.push({ updates: updates.slice(i, i + 1_000).reverse() });
  await insertJobs(producer, jobs.reverse());
  await waitFor('the daemon to apply the history', async () => {
    const { rows } = await db.pool.query<{ n: number }>(`select count(*)::int as n from ${SCHEMA}.transitions`);
    return rows[0]?.n === 2 * HISTORY.length + BLIP_HISTORY.length + QUIET_HISTORY.length + BURST_TRANSITIONS;
  }, 60_000, 200);
}, 120_000);

afterAll(async () => {
  await producer?.stop({ graceful: false });
  await daemon?.stop();
  await db?.drop();
});

describe('a mirror page timeline in Chromium', () => {
  for (const [window, periods, marks] of [['7d', 7, 0], ['24h', 3, 0], ['30d', 7, 0], ['90d', 7, 1]] as const) {
    it(`?window=${window}: one segment per status period, in order, with the catalog's boundaries`, async () => {
      const dom = await page(`mirrors/${STEADY}?window=${window}`);
      const [svg] = svgs(dom, 'timeline');
      expect(svg).toBeDefined();
      const from = attribute(svg ?? '', 'data-from') ?? '';
      const to = attribute(svg ?? '', 'data-to') ?? '';
      expect(Date.parse(to) - Date.parse(from)).toBe({ '7d': 7, '24h': 1, '30d': 30, '90d': 90 }[window] * DAY);
      const want = await expected(STEADY, from, to);
      expect(want).toHaveLength(periods);
      const shown = rects(svg ?? '');
      // At 90 days a pixel is over two hours: the last two periods (90 minutes each) merge.
      expect(matchPeriods(shown, want)).toBe(marks);
      // The same periods as text, for readers without a mouse: a title per segment, and the list.
      expect(svg?.match(/<title>/g)?.length).toBe(shown.length + 1);
      expect(dom).toContain(`${shown.length} periods as text`);
      expect(/data-merged="(\d+)"/.exec(dom)?.[1]).toBe(marks ? '2' : undefined);
    });
  }

  it('merges periods narrower than a pixel and says how many', async () => {
    const dom = await page(`mirrors/${BURST}`);
    const [svg] = svgs(dom, 'timeline');
    const shown = rects(svg ?? '');
    const want = await expected(BURST, attribute(svg ?? '', 'data-from') ?? '', attribute(svg ?? '', 'data-to') ?? '');
    expect(want).toHaveLength(BURST_TRANSITIONS);
    // Bounded by the drawing's width, and every period accounted for, in order, end to end.
    expect(shown.length).toBeLessThanOrEqual(1000);
    expect(matchPeriods(shown, want)).toBeGreaterThan(0);
    const merged = shown.filter((r) => r.status === 'merged');
    const note = /data-merged="(\d+)"/.exec(dom);
    expect(Number(note?.[1])).toBe(merged.reduce((n, r) => n + r.periods, 0));
    expect(merged.length).toBeGreaterThan(0);
  });

  it('keeps a hostile name as text, and answers 400 naming a bad window', async () => {
    const list = await page('/?limit=500');
    const row = listedRows(list).find((r) => r.mirror === HOSTILE);
    const dom = await page(row?.href ?? '');
    expect(headingName(dom)).toBe(HOSTILE);
    expect(dom).not.toMatch(/<img|<script/i);
    expect(/<title>([^<]*)<\/title>/.exec(dom)?.[1]).not.toBe('pwned');
    const [svg] = svgs(dom, 'timeline');
    expect(rects(svg ?? '').map((r) => r.status)).toEqual(['setup', 'snapshot', 'running', 'failed', 'running', 'paused', 'running']);

    const bad = await fetch(`${daemon.url}/mirrors/${STEADY}?window=1y`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('Bad parameter: window');
  });
});

describe('fleet page sparklines in Chromium', () => {
  // Twice: the first view reads every row's history, the second draws from the reads kept (the window moved on).
  it.each(['read', 'kept'])('one per row, each the last 24 h of its mirror from the catalog (%s)', async () => {
    const dom = await page('/?limit=500');
    const rows = listedRows(dom);
    const sparks = svgs(dom, 'spark');
    expect(sparks).toHaveLength(rows.length);
    expect(rows.map((r) => r.mirror).sort()).toEqual([BLIP, BURST, QUIET, STEADY, HOSTILE].sort());
    // The window, once a page: the column heading's.
    const heading = /<th data-from="[^"]*" data-to="[^"]*">Last 24 h<\/th>/.exec(dom)?.[0] ?? '';
    const from = attribute(heading, 'data-from') ?? '';
    const to = attribute(heading, 'data-to') ?? '';
    for (const [i, row] of rows.entries()) {
      const svg = sparks[i] ?? '';
      expect(Date.parse(to) - Date.parse(from)).toBe(DAY);
      expect(attribute(svg, 'viewBox')).toBe('0 0 86400 1');
      const want = await expected(row.mirror, from, to);
      const shown = pieces(svg);
      // One title for the row (no title per period), which counts the periods.
      expect(svg.match(/<title>/g)).toHaveLength(1);
      expect(Number(/<title>last 24 h, ([\d,]+) status periods?/.exec(svg)?.[1]?.replaceAll(',', ''))).toBe(want.length);
      if (row.mirror === BURST) {
        expect(shown.length).toBeLessThanOrEqual(120);
        expect(matchPieces(shown, inSeconds(want, from))).toBeGreaterThan(0);
      } else if (row.mirror === BLIP) {
        // Its own colour, not a merged mark, whether its two transitions share a pixel or not.
        expect(shown).toEqual(inSeconds(want, from));
        expect(shown.map((r) => r.status)).toEqual(['running', 'failed', 'running']);
      } else if (row.mirror === QUIET) {
        expect(shown).toEqual(inSeconds(want, from));
        expect(shown).toEqual([{ status: 'running', from: 0, to: 86_400 }]);
      } else {
        // A pixel of a 24-hour sparkline is 12 minutes: the 90-minute periods stay apart.
        expect(shown, row.mirror).toEqual(inSeconds(want, from));
        expect(shown.map((r) => r.status)).toEqual(['running', 'paused', 'running']);
        expect(matchPieces(shown, inSeconds(want, from))).toBe(0);
      }
    }
  });

  it('lays each out at the size of a table cell\'s drawing (the stylesheet\'s, not attributes)', async () => {
    const sizes = await evaluateInPage<number[][]>(new URL('/?limit=500', `${daemon.url}/`).href,
      `[...document.querySelectorAll('svg.spark')].map((s) => [s.getBoundingClientRect().width, s.getBoundingClientRect().height])`);
    expect(sizes).toHaveLength(5);
    for (const size of sizes) expect(size).toEqual([120, 14]);
  });

  it('draws a new transition at once, though the page keeps sparkline reads between views', async () => {
    const blip = async () => {
      const dom = await page('/?limit=500');
      const svg = svgs(dom, 'spark')[listedRows(dom).findIndex((r) => r.mirror === BLIP)] ?? '';
      const from = /<th data-from="([^"]*)"/.exec(dom)?.[1] ?? '';
      const to = /<th data-from="[^"]*" data-to="([^"]*)"/.exec(dom)?.[1] ?? '';
      return { shown: pieces(svg), want: inSeconds(await expected(BLIP, from, to), from) };
    };
    // Read, then kept: both views draw the catalog's periods.
    for (const view of [await blip(), await blip()]) expect(view.shown).toEqual(view.want);
    await insertJobs(producer, [{ updates: [{ mirror: BLIP, status: 'paused', observedAt: new Date().toISOString() }] }]);
    await waitFor('the daemon to apply the new transition', async () => {
      const { rows } = await db.pool.query<{ n: number }>(`select count(*)::int as n from ${SCHEMA}.transitions where mirror = $1`, [BLIP]);
      return rows[0]?.n === BLIP_HISTORY.length + 1;
    }, 30_000, 100);
    const after = await blip();
    expect(after.shown).toEqual(after.want);
    expect(after.shown.map((p) => p.status)).toEqual(['running', 'failed', 'running', 'paused']);
  });
});
