/**
 * Status timelines drawn as inline SVG: a mirror's statuses over a window on its page (the fleet
 * page's small sparklines, cheaper, are sparkline.ts). No script, no external asset: each segment is a <rect> in
 * the status colours of the badges (layout.ts), with its status, start, end and duration as text in
 * a <title> (and in data- attributes), and a legend that says the same without a mouse.
 *
 * From transitions to segments: the window opens with the status the mirror was in at its start
 * (if any was recorded), and each transition in the window starts a new period. The catalog read
 * (catalog/readTimelines.ts) returns one row per pixel-wide bucket; a bucket holding several
 * transitions holds periods narrower than a pixel, and consecutive periods narrower than a pixel
 * are drawn as one merged mark (dark) whose title says how many it stands for. A single narrow
 * period between wide ones keeps its own colour (a minute of `failed` in a week stays visible,
 * drawn a pixel wide). So the drawing has at most about one mark per pixel, whatever the history.
 */
import type { MirrorTimeline } from '../../catalog/readTimelines.js';
import { formatCount, formatDuration, formatUtc } from './format.js';
import { type Html, html, htmlEach } from './html.js';

/** The window choices of a mirror's page (`?window=`), in seconds. */
export const TIMELINE_WINDOWS = { '24h': 86_400, '7d': 7 * 86_400, '30d': 30 * 86_400, '90d': 90 * 86_400 } as const;
export type TimelineWindowName = keyof typeof TIMELINE_WINDOWS;
export const DEFAULT_TIMELINE_WINDOW: TimelineWindowName = '7d';
/** A mirror page's timeline is drawn in this many units (≈ pixels at the page's width). */
export const TIMELINE_WIDTH = 1000;
const TIMELINE_HEIGHT = 28;

export interface Segment {
  /** null for a merged mark of several periods narrower than a pixel. */
  status: string | null;
  /** RFC 3339, clipped to the window. */
  from: string;
  to: string;
  fromMs: number;
  toMs: number;
  /** When the period really began, where that was before the window. */
  since?: string;
  /** For a merged mark: how many periods it stands for. */
  periods: number;
  /** For a merged mark: the status after it (the last period's). */
  endStatus?: string;
}

export interface Timeline {
  fromMs: number;
  toMs: number;
  segments: Segment[];
  /** Periods in the window, and how many of them were drawn inside merged marks. */
  periods: number;
  merged: number;
  marks: number;
}

/** The window (from, to] as RFC 3339, ending at `nowMs`. */
export function timelineWindow(nowMs: number, seconds: number, buckets: number) {
  return { from: new Date(nowMs - seconds * 1000).toISOString(), to: new Date(nowMs).toISOString(), buckets };
}

/** Segments of one mirror's timeline, `width` units across (pure). */
export function timelineSegments(t: MirrorTimeline | undefined, window: { from: string; to: string; buckets: number }): Timeline {
  const fromMs = Date.parse(window.from);
  const toMs = Date.parse(window.to);
  const unitMs = (toMs - fromMs) / window.buckets;
  const periods: Segment[] = [];
  let current: { status: string; from: string; since?: string } | null = t?.start
    ? { status: t.start.status, from: window.from, since: t.start.at } : null;
  const close = (to: string) => {
    if (current) periods.push({ ...current, to, fromMs: Date.parse(current.from), toMs: Date.parse(to), periods: 1 });
  };
  let count = t?.start ? 1 : 0;
  for (const b of t?.buckets ?? []) {
    close(b.firstAt);
    count += b.count;
    if (b.count > 1) {
      periods.push({ status: null, from: b.firstAt, to: b.lastAt, fromMs: Date.parse(b.firstAt), toMs: Date.parse(b.lastAt), periods: b.count - 1, endStatus: b.lastStatus });
    }
    current = { status: b.lastStatus, from: b.lastAt };
  }
  close(window.to);

  // Consecutive periods narrower than a pixel become one merged mark.
  const segments: Segment[] = [];
  const narrow = (s: Segment) => s.toMs - s.fromMs < unitMs;
  let merged = 0;
  for (const s of periods) {
    const previous = segments[segments.length - 1];
    // A mark stops growing once it is a pixel wide, so a long run of short periods stays a run of marks.
    if (previous && narrow(s) && narrow(previous)) {
      merged += (previous.status === null ? 0 : 1) + s.periods;
      segments[segments.length - 1] = {
        status: null, from: previous.from, to: s.to, fromMs: previous.fromMs, toMs: s.toMs,
        periods: previous.periods + s.periods, endStatus: s.status ?? s.endStatus,
      };
    } else {
      if (s.status === null) merged += s.periods;
      segments.push(s);
    }
  }
  return { fromMs, toMs, segments, periods: count, merged, marks: segments.filter((s) => s.status === null).length };
}

function describe(s: Segment): string {
  const seconds = (s.toMs - s.fromMs) / 1000;
  if (s.status === null) {
    return `${formatCount(s.periods)} status periods, each shorter than a pixel, ${formatUtc(s.from)} to ${formatUtc(s.to)} (${formatDuration(seconds)}), ending ${s.endStatus ?? ''}`;
  }
  const since = s.since && s.since !== s.from ? ` (since ${formatUtc(s.since)})` : '';
  return `${s.status} from ${formatUtc(s.from)}${since} to ${formatUtc(s.to)} (${formatDuration(seconds)})`;
}

function rect(s: Segment, t: Timeline, width: number, height: number): Html {
  const scale = width / (t.toMs - t.fromMs);
  const x = (s.fromMs - t.fromMs) * scale;
  const w = Math.max((s.toMs - s.fromMs) * scale, 1);
  return html`<rect class="seg ${s.status === null ? 'merged' : `s-${s.status}`}" x="${x.toFixed(2)}" y="0" width="${w.toFixed(2)}" height="${height}" data-status="${s.status ?? 'merged'}" data-from="${s.from}" data-to="${s.to}"${s.status === null ? html` data-periods="${s.periods}"` : ''}><title>${describe(s)}</title></rect>`;
}

/** A mirror page's timeline: the drawing, the time spent per status, and every period as text. */
export async function renderTimeline(t: Timeline, windowName: string, windowLinks: Html): Promise<Html> {
  const total = new Map<string, number>();
  for (const s of t.segments) {
    const key = s.status ?? 'merged';
    total.set(key, (total.get(key) ?? 0) + (s.toMs - s.fromMs) / 1000);
  }
  const windowSeconds = (t.toMs - t.fromMs) / 1000;
  const legend = [...total].sort((a, b) => b[1] - a[1]).map(([status, seconds]) => html`<li><span class="swatch ${status === 'merged' ? 'merged' : `s-${status}`}"></span>${status === 'merged' ? 'merged (periods shorter than a pixel)' : status} <span class="muted">${formatDuration(seconds)} · ${(100 * seconds / windowSeconds).toFixed(1)}%</span></li>`);
  const from = new Date(t.fromMs).toISOString();
  const to = new Date(t.toMs).toISOString();
  const svg = html`<svg class="timeline" viewBox="0 0 ${TIMELINE_WIDTH} ${TIMELINE_HEIGHT}" preserveAspectRatio="none" width="100%" height="${TIMELINE_HEIGHT}" role="img" aria-label="status timeline, ${windowName}" data-from="${from}" data-to="${to}" data-segments="${t.segments.length}"><rect class="nodata" x="0" y="0" width="${TIMELINE_WIDTH}" height="${TIMELINE_HEIGHT}"><title>no status recorded</title></rect>${await htmlEach(t.segments, (s) => rect(s, t, TIMELINE_WIDTH, TIMELINE_HEIGHT))}</svg>`;
  const mergedNote = t.merged > 0
    ? html`<p class="muted merged-note" data-merged="${t.merged}">${formatCount(t.merged)} of ${formatCount(t.periods)} status periods were shorter than a pixel and are drawn as ${formatCount(t.marks)} merged mark${t.marks === 1 ? '' : 's'}; a shorter window shows them apart.</p>`
    : '';
  const list = t.segments.length === 0 ? '' : html`<details class="periods"><summary>${formatCount(t.segments.length)} period${t.segments.length === 1 ? '' : 's'} as text</summary><ol>${await htmlEach(t.segments, (s) => html`<li>${describe(s)}</li>`)}</ol></details>`;
  return html`<div class="timeline-card card"><div class="bar timeline-head">${windowLinks}</div>
${svg}
<div class="axis"><time datetime="${from}">${formatUtc(from)}</time><time datetime="${to}">${formatUtc(to)}</time></div>
${t.segments.length === 0 ? html`<p class="muted">No status recorded in this window.</p>` : html`<ul class="legend">${legend}</ul>`}
${mergedNote}${list}</div>`;
}
