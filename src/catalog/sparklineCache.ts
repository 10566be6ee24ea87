/**
 * The fleet page's sparkline reads, kept between page views (readSparklines.ts), the way
 * kube-state-metrics renders an object once when it changes: a mirror's transitions change only
 * when its transitions_total does (the batch writer bumps it in the transaction that inserts them),
 * so a kept read is checked against the row of the page's own snapshot, and what it draws is what
 * that snapshot holds. The window slides with the clock, which needs no read: a transition that
 * leaves the window becomes the status it opens with.
 *
 * A read is kept as groups of transitions after the read window's start, in time order: each
 * transition on its own where a pixel held one or two, and a pixel's group (how many, the first
 * and the last) where it held more, so a mirror flapping thousands of times a day is kept in at
 * most a row per pixel too. A later window regroups them into its own pixels (drawGroups); one
 * whose start falls inside a group (between its first and last transition) cannot split it, and is
 * read again. So that a busy mirror is not read again on every view (the window's start moves on
 * with the clock, into its first group at once), the read also has the transitions of its window's
 * first pixel each on its own (up to SPARKLINE_EXACT_HEAD of them, readSparklines.ts): the window
 * can slide about a pixel before that happens. Reads that found a transition ahead of the clock
 * are not kept. A transitions
 * retention under a day (MIRRORSTATE_TRANSITIONS_MAX_AGE, docs/catalog.md) is the one case where a
 * kept read can show a transition the catalog has since deleted.
 *
 * Owned by the status page (one per server), at most MAX_SPARKLINE_CACHE_MIRRORS mirrors, the
 * oldest kept dropped first.
 */

/** A bucket of a sparkline's read: the transitions of one pixel of the drawing (readSparklines.ts). */
export interface SparklineBucket {
  /** Transitions in the bucket (one pixel of the drawing). */
  count: number;
  /** Seconds from the window's start to the bucket's first and last transition. */
  first: number;
  last: number;
  /** The statuses the bucket's first and last transitions went to. */
  firstStatus: string;
  status: string;
}

/** A mirror's statuses over a window, as the page draws them (http/page/sparkline.ts). */
export interface Sparkline {
  /** The status at the window's start (the newest transition at or before it), if any. */
  start: string | null;
  /** In time order. */
  buckets: SparklineBucket[];
}

export const MAX_SPARKLINE_CACHE_MIRRORS = 20_000;

export interface KeptGroup {
  /** Transitions in the group (1 for a transition on its own). */
  count: number;
  /** Its first and last transition, in microseconds since the epoch (integers, exact). */
  firstUs: number;
  lastUs: number;
  /** The statuses its first and last transitions went to. */
  firstStatus: string;
  status: string;
}

interface Entry {
  transitionsTotal: number;
  /** The start of the window it was read for, and the status then. */
  fromUs: number;
  start: string | null;
  /** Every transition after fromUs, in time order, in groups. */
  groups: KeptGroup[];
}

/**
 * A read's groups (after fromUs, the status then `start`) drawn over (fromUs, toUs] in `buckets`
 * pixels: the groups of one pixel become its bucket. Undefined when the window starts inside a group
 * (between its first and last transition: the group cannot be split) or a group ends after toUs.
 * The one way from groups to what the page draws, for a read just made and for a kept one alike.
 */
export function drawGroups(start: string | null, groups: readonly KeptGroup[], fromUs: number, toUs: number, buckets: number): Sparkline | undefined {
  let i = 0;
  for (; i < groups.length && (groups[i] as KeptGroup).lastUs <= fromUs; i++) start = (groups[i] as KeptGroup).status;
  if (i < groups.length && (groups[i] as KeptGroup).firstUs <= fromUs) return undefined;
  const unitUs = (toUs - fromUs) / buckets;
  const out: SparklineBucket[] = [];
  let bucket = -1;
  let last: SparklineBucket | undefined;
  for (; i < groups.length; i++) {
    const g = groups[i] as KeptGroup;
    if (g.lastUs > toUs) return undefined;
    const b = Math.min(buckets - 1, Math.floor((g.firstUs - fromUs) / unitUs));
    if (last && b === bucket) {
      last.count += g.count;
      last.last = (g.lastUs - fromUs) / 1e6;
      last.status = g.status;
    } else {
      last = { count: g.count, first: (g.firstUs - fromUs) / 1e6, last: (g.lastUs - fromUs) / 1e6, firstStatus: g.firstStatus, status: g.status };
      out.push(last);
      bucket = b;
    }
  }
  return { start, buckets: out };
}

export class SparklineCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxMirrors = MAX_SPARKLINE_CACHE_MIRRORS) {}

  get size(): number {
    return this.entries.size;
  }

  keep(mirror: string, transitionsTotal: number, fromUs: number, start: string | null, groups: KeptGroup[]): void {
    this.entries.delete(mirror);
    this.entries.set(mirror, { transitionsTotal, fromUs, start, groups });
    if (this.entries.size > this.maxMirrors) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  /**
   * The mirror's statuses over (fromUs, toUs] in `buckets` pixels, if a read kept for the same
   * transitions_total covers it; undefined otherwise.
   */
  sparkline(mirror: string, transitionsTotal: number, fromUs: number, toUs: number, buckets: number): Sparkline | undefined {
    const e = this.entries.get(mirror);
    if (!e || e.transitionsTotal !== transitionsTotal || fromUs < e.fromUs) return undefined;
    return drawGroups(e.start, e.groups, fromUs, toUs, buckets);
  }
}
