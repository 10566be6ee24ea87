/**
 * The status timelines in a real browser: a mirror page's timeline and the fleet page's sparklines,
 * for mirrors whose history was published through the queue and applied by the daemon. What
 * Chromium built must have one segment per status period in the window, in order, each with the
 * status and the exact boundaries of the catalog's transitions (the window's start and end, read
 * from the drawing, decide which transitions fall in it). A history denser than the drawing's
 * pixels is merged into marks that still account for every period. Hostile names stay text.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpDom } from '../helpers/chromium.js';
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

const page = (path: string) => dumpDom(new URL(path, `${daemon.url}/`).href);

beforeAll(async () => {
  db = await createTestDatabase('page_timeline');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  producer = await startProducer(db.url);
  const updates = [
    ...HISTORY.map(([ago, status], i) => ({ mirror: STEADY, status, observedAt: iso(ago, i), seq: i })),
    ...HISTORY.map(([ago, status]) => ({ mirror: HOSTILE, status, observedAt: iso(ago + 1_000) })),
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
    return rows[0]?.n === 2 * HISTORY.length + BURST_TRANSITIONS;
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
  it('one per row, each the last 24 h of its mirror from the catalog', async () => {
    const dom = await page('/?limit=500');
    const rows = listedRows(dom);
    const sparks = svgs(dom, 'spark');
    expect(sparks).toHaveLength(rows.length);
    expect(rows.map((r) => r.mirror).sort()).toEqual([BURST, STEADY, HOSTILE].sort());
    for (const [i, row] of rows.entries()) {
      const svg = sparks[i] ?? '';
      const from = attribute(svg, 'data-from') ?? '';
      const to = attribute(svg, 'data-to') ?? '';
      expect(Date.parse(to) - Date.parse(from)).toBe(DAY);
      const want = await expected(row.mirror, from, to);
      const shown = rects(svg);
      if (row.mirror === BURST) {
        expect(shown.length).toBeLessThanOrEqual(120);
        expect(matchPeriods(shown, want)).toBeGreaterThan(0);
      } else {
        // A pixel of a 24-hour sparkline is 12 minutes: the 90-minute periods stay apart.
        expect(shown, row.mirror).toEqual(want);
        expect(shown.map((r) => r.status)).toEqual(['running', 'paused', 'running']);
      }
    }
  });
});
