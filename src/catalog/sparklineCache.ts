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
 * most a row per pixel too. A later window regroups them into its own pixels; one whose start
 * falls inside a group (between its first and last transition) cannot split it, and is read
 * again. Reads that found a transition ahead of the clock are not kept. A transitions
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
  sparkline(mirror: string, transitionsTotal: number, fromUs: number, toUs: number, buckets: number) {
    const e = this.entries.get(mirror);
    if (!e || e.transitionsTotal !== transitionsTotal || fromUs < e.fromUs) return undefined;
    let start = e.start;
    let i = 0;
    for (; i < e.groups.length && (e.groups[i] as KeptGroup).lastUs <= fromUs; i++) start = (e.groups[i] as KeptGroup).status;
    if (i < e.groups.length && (e.groups[i] as KeptGroup).firstUs <= fromUs) return undefined;
    const unitUs = (toUs - fromUs) / buckets;
    const out: SparklineBucket[] = [];
    let bucket = -1;
    for (; i < e.groups.length; i++) {
      const g = e.groups[i] as KeptGroup;
      if (g.lastUs > toUs) return undefined;
      const b = Math.min(buckets - 1, Math.floor((g.firstUs - fromUs) / unitUs));
      const last = out[out.length - 1];
      if (last && b === bucket) {
        last.count += g.count;
        last.last = (g.lastUs - fromUs) / 1e6;
        last.status = g.status;
      } else {
        out.push({ count: g.count, first: (g.firstUs - fromUs) / 1e6, last: (g.lastUs - fromUs) / 1e6, firstStatus: g.firstStatus, status: g.status });
        bucket = b;
      }
    }
    return { start, buckets: out };
  }
}
