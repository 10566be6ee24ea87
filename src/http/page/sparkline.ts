/**
 * The fleet page's sparklines: a mirror's statuses over the last 24 hours, one small inline SVG per
 * row of up to 500 (no script, no external asset), as few bytes and as little work a row as the
 * drawing allows, because a row's bytes are much of what it costs (docs/performance.md):
 * - one `<path>` per status, each period a rectangle in it, not an element per period;
 * - the drawing's x axis is seconds from the window's start (viewBox 0 … 86,400), so each period is
 *   drawn from its exact start to its exact end, rounded to the second, in short integers, and a
 *   reader (or a test) gets the boundaries back from the geometry;
 * - one row-level `<title>` (the SVG's accessible name, and its tooltip): the time in each status
 *   and how many periods the day held. The period-by-period text is the mirror's own page's
 *   timeline (timeline.ts), a click away.
 *
 * The periods are those of timeline.ts: the window opens with the status at its start, each
 * transition starts a period, and consecutive periods narrower than a pixel (12 minutes) are drawn
 * as one merged dark mark, which stops growing once it is a pixel wide. A lone narrow period keeps
 * its colour: each path has a one-pixel stroke in its own colour (non-scaling), so a minute of
 * `failed` still shows, and the statuses with the least time are drawn last, on top.
 */
import type { Sparkline } from '../../catalog/readSparklines.js';
import type { TimelineWindow } from '../../catalog/readTimelines.js';
import { formatCount, formatDuration } from './format.js';
import { escapeHtml, type Html, html, trustedHtml } from './html.js';

/** The last 24 hours, drawn this many pixels wide (and read in as many buckets). */
export const SPARKLINE_WINDOW_SECONDS = 86_400;
export const SPARKLINE_WIDTH = 120;
export const SPARKLINE_HEIGHT = 14;

export interface SparklinePeriod {
  /** null: a merged mark of several periods narrower than a pixel. */
  status: string | null;
  /** Seconds from the window's start. */
  from: number;
  to: number;
  /** How many status periods it stands for (1 unless merged). */
  periods: number;
}

/** Appends a period as it closes, a narrow one merged into a narrow one before it. */
function addPeriod(periods: SparklinePeriod[], p: SparklinePeriod, unit: number): void {
  const previous = periods[periods.length - 1];
  if (previous && p.to - p.from < unit && previous.to - previous.from < unit) {
    periods[periods.length - 1] = { status: null, from: previous.from, to: p.to, periods: previous.periods + p.periods };
  } else periods.push(p);
}

/** The periods of one sparkline (pure), and how many status periods the window holds in all. */
export function sparklinePeriods(s: Sparkline | undefined, seconds: number, buckets: number): { periods: SparklinePeriod[]; count: number } {
  const unit = seconds / buckets;
  const periods: SparklinePeriod[] = [];
  let status = s?.start ?? null;
  let from = 0;
  let count = status === null ? 0 : 1;
  for (const b of s?.buckets ?? []) {
    if (status !== null) addPeriod(periods, { status, from, to: b.first, periods: 1 }, unit);
    count += b.count;
    // A bucket of several transitions holds count − 1 periods narrower than a pixel; of two, one
    // period, whose status is known (the first transition's).
    if (b.count === 2) addPeriod(periods, { status: b.firstStatus, from: b.first, to: b.last, periods: 1 }, unit);
    else if (b.count > 2) addPeriod(periods, { status: null, from: b.first, to: b.last, periods: b.count - 1 }, unit);
    status = b.status;
    from = b.last;
  }
  if (status !== null) addPeriod(periods, { status, from, to: seconds, periods: 1 }, unit);
  return { periods, count };
}

/** One rectangle of a path, x in seconds, the height the viewBox's 1. */
const box = (from: number, to: number) => {
  const x = Math.round(from);
  const w = Math.round(to) - x;
  return `M${x} 0h${w}v1h-${w}z`;
};

const byTimeDescending = (a: { time: number }, b: { time: number }) => b.time - a.time;

/**
 * The page's renderer: the window is the same for every row, so the SVG's opening is built once
 * (the window's times are the column heading's `data-from` / `data-to`, once a page, and the
 * background that shows "no status recorded" is the stylesheet's); each row adds its title and its
 * paths. Up to 500 rows a page, so a row's SVG is one string built in one pass over its periods:
 * its only text from input, the status names, is escaped once a page (with the path's opening),
 * and the rest is this module's words and numbers, which need no escaping. A mirror whose status did
 * not change within the window (most of a steady fleet) draws its status's one SVG, built once a
 * page.
 */
export function sparklineRenderer(window: TimelineWindow): (s: Sparkline | undefined) => Html {
  const seconds = Math.round((Date.parse(window.to) - Date.parse(window.from)) / 1000);
  const unit = seconds / window.buckets;
  // Its size is the stylesheet's (layout.ts): 25 bytes a row less.
  const open = html`<svg class="spark" viewBox="0 0 ${seconds} 1" preserveAspectRatio="none" role="img"><title>`.text;
  const shorter = `shorter than ${formatDuration(unit)} drawn merged`;
  // Per status, escaped once a page: its name for the title and its path's opening.
  const statuses = new Map<string, { name: string; path: string }>();
  const escaped = (status: string) => {
    let e = statuses.get(status);
    if (e === undefined) statuses.set(status, e = { name: escapeHtml(status), path: html`<path class="s-${status}" d="`.text });
    return e;
  };

  const draw = (s: Sparkline | undefined): Html => {
    const { periods, count } = sparklinePeriods(s, seconds, window.buckets);
    // Per status, in the order first drawn: its time and its path; merged marks apart.
    const drawnStatuses: { status: string; time: number; path: string }[] = [];
    let marksTime = 0;
    let marks = '';
    let merged = 0;
    for (const p of periods) {
      if (p.status === null) {
        marksTime += p.to - p.from;
        marks += box(p.from, p.to);
        merged += p.periods;
        continue;
      }
      const entry = drawnStatuses.find((d) => d.status === p.status);
      if (entry) {
        entry.time += p.to - p.from;
        entry.path += box(p.from, p.to);
      } else drawnStatuses.push({ status: p.status, time: p.to - p.from, path: box(p.from, p.to) });
    }
    // The most time first (drawn first, under the rest), ties in the order drawn (the sort is stable).
    drawnStatuses.sort(byTimeDescending);
    let title = count === 0 ? 'last 24 h: no status recorded' : `last 24 h, ${formatCount(count)} status period${count === 1 ? '' : 's'}: `;
    let drawn = '';
    for (const [k, { status, time, path }] of drawnStatuses.entries()) {
      const e = escaped(status);
      title += `${k ? ', ' : ''}${e.name} ${formatDuration(time)}`;
      drawn += `${e.path}${path}"/>`;
    }
    if (marks) {
      title += `${drawnStatuses.length ? ', ' : ''}${formatCount(merged)} ${shorter} ${formatDuration(marksTime)}`;
      drawn += `<path class="merged" d="${marks}"/>`;
    }
    return trustedHtml(`${open}${title}</title>${drawn}</svg>`);
  };

  const steady = new Map<string | null, Html>();
  return (s) => {
    if (s !== undefined && s.buckets.length > 0) return draw(s);
    const start = s?.start ?? null;
    let svg = steady.get(start);
    if (svg === undefined) steady.set(start, svg = draw(s));
    return svg;
  };
}
