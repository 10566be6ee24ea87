/**
 * The fleet page's sparkline reads, kept between page views (readSparklines.ts), the way
 * kube-state-metrics renders an object once when it changes: a mirror's transitions change only
 * when its transitions_total does (the batch writer bumps it in the transaction that inserts them),
 * so a kept read is checked against the row of the page's own snapshot, and what it draws is what
 * that snapshot holds. The window slides with the clock, which needs no read: a transition that
 * leaves the window becomes the status it opens with.
 *
 * Only exact reads are kept: every transition after the read window's start, which is what the
 * read returns when no pixel held more than two of them and none was ahead of the clock. A mirror
 * flapping faster than that is read each time (bounded by the drawing's pixels). A transitions
 * retention under a day (MIRRORSTATE_TRANSITIONS_MAX_AGE, docs/catalog.md) is the one case where a
 * kept read can show a transition the catalog has since deleted.
 *
 * Owned by the status page (one per server), at most MAX_SPARKLINE_CACHE_MIRRORS mirrors, the
 * oldest kept dropped first.
 */
import type { SparklineBucket } from './readSparklines.js';

export const MAX_SPARKLINE_CACHE_MIRRORS = 20_000;

export interface KeptTransition {
  /** Microseconds since the epoch (integers, exact). */
  atUs: number;
  status: string;
}

interface Entry {
  transitionsTotal: number;
  /** The start of the window it was read for, and the status then. */
  fromUs: number;
  start: string | null;
  /** Every transition after fromUs, in time order. */
  transitions: KeptTransition[];
}

export class SparklineCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxMirrors = MAX_SPARKLINE_CACHE_MIRRORS) {}

  get size(): number {
    return this.entries.size;
  }

  keep(mirror: string, transitionsTotal: number, fromUs: number, start: string | null, transitions: KeptTransition[]): void {
    this.entries.delete(mirror);
    this.entries.set(mirror, { transitionsTotal, fromUs, start, transitions });
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
    for (; i < e.transitions.length && (e.transitions[i] as KeptTransition).atUs <= fromUs; i++) start = (e.transitions[i] as KeptTransition).status;
    const unitUs = (toUs - fromUs) / buckets;
    const out: SparklineBucket[] = [];
    let bucket = -1;
    for (; i < e.transitions.length; i++) {
      const t = e.transitions[i] as KeptTransition;
      if (t.atUs > toUs) return undefined;
      const at = (t.atUs - fromUs) / 1e6;
      const b = Math.min(buckets - 1, Math.floor((t.atUs - fromUs) / unitUs));
      const last = out[out.length - 1];
      if (last && b === bucket) {
        last.count++;
        last.last = at;
        last.status = t.status;
      } else {
        out.push({ count: 1, first: at, last: at, firstStatus: t.status, status: t.status });
        bucket = b;
      }
    }
    return { start, buckets: out };
  }
}
