/**
 * The per-mirror text cache (kube-state-metrics style): each mirror's lines rendered once per row
 * version (families.ts), grouped in buckets of about 64 mirrors, one immutable buffer per family
 * per bucket. A catalog read re-renders only the mirrors whose version changed and rebuilds only
 * their buckets; a scrape streams the buffers (route.ts) or their cached gzip pieces (gzip.ts).
 */
import { type MirrorFamily, renderMirror } from './families.js';
import type { MirrorChange } from './feed.js';
import type { MirrorRow, MirrorVersion } from './readMirrorRows.js';

/**
 * The text of one bucket of mirrors: per family, the sample lines of its mirrors (in `mirrors`
 * order) as one UTF-8 buffer. Immutable once built: a change makes a new bucket, so a scrape still
 * streaming an older snapshot keeps the buffers it started with and no scrape copies any.
 */
export interface Bucket {
  readonly mirrors: readonly string[];
  /**
   * `offsets[f * (mirrors.length + 1) + j]`: where mirror j's lines start in `text[f]`. A plain
   * array: a typed array this size would be one more allocation outside the heap per bucket.
   */
  readonly offsets: readonly number[];
  readonly text: readonly Buffer[];
  /**
   * Per family, `text[f]` as a raw deflate piece with its CRC-32 and CRC shift operator (see
   * gzip.ts), made on the first gzip scrape that needs it, or taken over from the bucket this one
   * replaced where the family's text did not change (an update changes a few families of a mirror:
   * its lag, its last-update time; the other families of its bucket need no new compression).
   */
  readonly gzip: (GzipPiece | undefined)[];
}

export interface GzipPiece {
  readonly deflated: Buffer;
  readonly crc: number;
  /** crc32ShiftOperator(text length). */
  readonly shift: number;
}

/** FNV-1a over UTF-16 code units: spreads names over buckets (internal only, unlike the shard hash). */
function bucketHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * About 64 mirrors a bucket (32-64, in powers of two): a change re-copies (and re-compresses, for
 * gzip) the families it changed across its whole bucket, while every bucket costs a write per
 * family per answer, a gzip piece to combine, and a rebuild's fixed work. Smaller buckets made
 * answers slower and blocked the event loop longer under churn, larger ones bought nothing
 * (docs/performance.md, "Bucket size").
 */
export function bucketCountFor(mirrors: number): number {
  let n = 16;
  while (n < 16384 && n * 64 < mirrors) n *= 2;
  return n;
}

/** Where a mirror's text comes from when its bucket is rebuilt: a new render, or its index in the replaced bucket. */
type Source = string[] | number;

/**
 * A family's text is reused from the bucket this one replaces when the bucket keeps its members
 * and none of its new renders changed that family: an update changes a few families of a mirror
 * (its lag, its last-update time), so most of a rebuilt bucket's text (the 12-line status family
 * alone is the larger part of it) is neither copied nor left behind as garbage, and keeps its gzip
 * piece (docs/performance.md, "A bucket's unchanged families").
 * The other families share one allocation, filled by copying runs of the replaced bucket's bytes
 * (one copy per run of unchanged mirrors) and writing the new renders: no per-mirror Buffer
 * objects. `mirrors` is sorted; `sources[j]` says where mirror j's text comes from.
 */
function buildBucket(
  families: number, mirrors: readonly string[], sources: readonly Source[], replaced: Bucket | undefined, scratch: Buffer,
): Bucket {
  const n = mirrors.length;
  const stride = n + 1;
  const offsets = new Array<number>(families * stride);
  const sameMembers = replaced !== undefined && (replaced.mirrors === mirrors || (replaced.mirrors.length === n && replaced.mirrors.every((m, j) => m === mirrors[j])));
  const rs = (replaced?.mirrors.length ?? 0) + 1;
  const ro = replaced?.offsets ?? [];
  const text: Buffer[] = [];
  const gzip: (GzipPiece | undefined)[] = [];
  const rebuilt: number[] = [];
  let size = 0;
  for (let f = 0; f < families; f++) {
    if (sameMembers && familyUnchanged(replaced, sources, f, scratch)) {
      for (let j = 0; j <= n; j++) offsets[f * stride + j] = ro[f * rs + j]!;
      text.push(replaced.text[f]!);
      gzip.push(replaced.gzip[f]);
      continue;
    }
    let at = 0;
    for (let j = 0; j < n; j++) {
      offsets[f * stride + j] = at;
      const source = sources[j]!;
      at += typeof source === 'number' ? ro[f * rs + source + 1]! - ro[f * rs + source]! : Buffer.byteLength(source[f]!, 'utf8');
    }
    offsets[f * stride + n] = at;
    size += at;
    rebuilt.push(f);
    text.push(EMPTY);
    gzip.push(undefined);
  }
  const whole = Buffer.allocUnsafeSlow(size);
  let base = 0;
  for (const f of rebuilt) {
    const buffer = whole.subarray(base, base + offsets[f * stride + n]!);
    base += buffer.length;
    for (let j = 0; j < n; ) {
      const source = sources[j]!;
      if (typeof source !== 'number') {
        buffer.write(source[f]!, offsets[f * stride + j]!, 'utf8');
        j++;
        continue;
      }
      let k = j + 1;
      while (k < n && sources[k] === source + (k - j)) k++;
      replaced!.text[f]!.copy(buffer, offsets[f * stride + j]!, ro[f * rs + source]!, ro[f * rs + source + (k - j)]!);
      j = k;
    }
    text[f] = buffer;
    // A piece depends on its bytes alone: equal bytes (members came or went without lines in this family) keep it.
    if (replaced?.gzip[f] !== undefined && buffer.equals(replaced.text[f]!)) gzip[f] = replaced.gzip[f];
  }
  return { mirrors, offsets, text, gzip };
}

const EMPTY = Buffer.alloc(0);
/** Index of `mirror` in the sorted `mirrors`, which hold it. */
function sortedIndex(mirrors: readonly string[], mirror: string): number {
  let lo = 0;
  let hi = mirrors.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (mirrors[mid]! < mirror) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Whether family `f` of `replaced` (same members, same order) already holds every new render's lines. */
function familyUnchanged(replaced: Bucket, sources: readonly Source[], f: number, scratch: Buffer): boolean {
  const stride = replaced.mirrors.length + 1;
  const o = replaced.offsets;
  for (let j = 0; j < sources.length; j++) {
    const source = sources[j]!;
    if (typeof source === 'number') continue; // the replaced bucket's own bytes
    const start = o[f * stride + j]!;
    const end = o[f * stride + j + 1]!;
    if (Buffer.byteLength(source[f]!, 'utf8') !== end - start) return false;
    const length = scratch.write(source[f]!, 0, 'utf8');
    if (length !== end - start || scratch.compare(replaced.text[f]!, start, end, 0, length) !== 0) return false;
  }
  return true;
}

interface CacheEntry {
  version: string;
  bucket: number;
  /** The last snapshot that listed the mirror. */
  generation: number;
}

/**
 * Rendered text by mirror, grouped in buckets (kube-state-metrics style: a scrape streams cached
 * buffers). A mirror's text is keyed by its row version (`xmin` with `updated_at`, see
 * readMirrorRows.ts): any write to the row, by whichever writer, changes it, so a cached text is
 * never served for a row it was not rendered from. Only buckets holding a changed, new or departed
 * mirror are rebuilt, from the new renders and views of the old bucket's unchanged text.
 */
export class MirrorTextCache {
  /** `families`: those served, in the order their text is kept (bucket.text[f]). */
  constructor(private readonly families: readonly MirrorFamily[]) {}

  /** Where a new render is encoded to be compared with cached bytes (a mirror's lines of one family are far smaller). */
  private readonly scratch = Buffer.allocUnsafeSlow(1 << 16);
  private entries = new Map<string, CacheEntry>();
  private buckets: (Bucket | undefined)[] = [];
  private generation = 0;
  private current: readonly MirrorVersion[] = [];
  /** How many mirrors the last update or patch rendered anew. */
  rendered = 0;

  /**
   * Takes a snapshot's versions; returns the mirrors whose text is missing or was rendered from
   * another row version. Call `update` with their rows next.
   */
  stale(versions: readonly MirrorVersion[]): string[] {
    const count = bucketCountFor(versions.length);
    // The fleet grew or shrank fourfold: re-bucket from scratch (a cold read, rare by construction).
    if (this.buckets.length === 0 || count >= this.buckets.length * 4 || count * 4 <= this.buckets.length) {
      this.entries = new Map();
      this.buckets = new Array<Bucket | undefined>(count);
      this.live = [];
    }
    this.current = versions;
    const stale: string[] = [];
    for (const v of versions) if (this.entries.get(v.mirror)?.version !== v.version) stale.push(v.mirror);
    return stale;
  }

  /**
   * Renders `rows` (the stale mirrors' rows, from the same catalog snapshot as the versions) and
   * rebuilds the buckets they and departed mirrors touch, yielding to the event loop every
   * `yieldEvery` mirrors. Returns the snapshot's non-empty buckets.
   */
  async update(rows: readonly MirrorRow[], yieldTo: () => Promise<unknown>, yieldEvery: number): Promise<Bucket[]> {
    const generation = ++this.generation;
    const mask = this.buckets.length - 1;
    // Rendered bucket by bucket in rebuild: a cold read's text never sits in the heap all at once.
    const fresh = new Map<string, MirrorRow>(rows.map((row) => [row.mirror, row]));
    this.rendered = rows.length;
    const dirty = new Set<number>();
    let listed = 0;
    for (const { mirror, version } of this.current) {
      let entry = this.entries.get(mirror);
      if (entry !== undefined && entry.version === version) {
        entry.generation = generation;
        listed++;
        continue;
      }
      if (entry !== undefined) dirty.add(entry.bucket); // changed: its old text goes
      if (!fresh.has(mirror)) {
        // Stale without a row (cannot happen within one snapshot): left out rather than served stale.
        if (entry !== undefined) this.entries.delete(mirror);
        continue;
      }
      const bucket = bucketHash(mirror) & mask;
      if (entry === undefined) {
        entry = { version, bucket, generation };
        this.entries.set(mirror, entry);
      } else {
        entry.version = version;
        entry.generation = generation;
      }
      dirty.add(bucket);
      listed++;
    }
    // Mirrors gone from the snapshot (dropped, deleted, or moved to another shard) leave.
    if (this.entries.size > listed) {
      for (const [mirror, entry] of this.entries) {
        if (entry.generation !== generation) {
          this.entries.delete(mirror);
          dirty.add(entry.bucket);
        }
      }
    }
    if (dirty.size > 0) {
      const members = new Map<number, string[]>([...dirty].map((b) => [b, []]));
      for (const [mirror, entry] of this.entries) members.get(entry.bucket)?.push(mirror);
      await this.rebuild(members, fresh, yieldTo, yieldEvery);
    }
    return this.liveBuckets(dirty.size > 0);
  }

  /**
   * The change feed's counterpart of stale + update: applies `changes` (rows of one snapshot whose
   * version may differ from the cached one; dropped ones leave) and rebuilds only their buckets,
   * without walking the whole fleet. When nothing changed the previous array is returned as is, so
   * the route can serve its assembled answer again.
   */
  async patch(changes: readonly MirrorChange[], yieldTo: () => Promise<unknown>, yieldEvery: number): Promise<Bucket[]> {
    const mask = this.buckets.length - 1;
    const fresh = new Map<string, MirrorRow>();
    /** Per dirty bucket, its members after the changes, or undefined while they are the same. */
    const members = new Map<number, Set<string> | undefined>();
    const membersOf = (b: number) => {
      let set = members.get(b);
      if (set === undefined) members.set(b, (set = new Set(this.buckets[b]?.mirrors)));
      return set;
    };
    for (let i = 0; i < changes.length; i++) {
      if (i > 0 && i % yieldEvery === 0) await yieldTo();
      const row = changes[i]!;
      const entry = this.entries.get(row.mirror);
      if (row.dropped) {
        if (entry === undefined) continue;
        this.entries.delete(row.mirror);
        membersOf(entry.bucket).delete(row.mirror);
      } else if (entry === undefined) {
        const bucket = bucketHash(row.mirror) & mask;
        this.entries.set(row.mirror, { version: row.version, bucket, generation: this.generation });
        membersOf(bucket).add(row.mirror);
        fresh.set(row.mirror, row);
      } else if (entry.version !== row.version) {
        entry.version = row.version;
        if (!members.has(entry.bucket)) members.set(entry.bucket, undefined);
        fresh.set(row.mirror, row);
      }
    }
    this.rendered = fresh.size;
    if (members.size > 0) await this.rebuild(new Map([...members].map(([b, set]) => [b, set && [...set]])), fresh, yieldTo, yieldEvery);
    return this.liveBuckets(members.size > 0);
  }

  /** Whether the buckets suit a fleet of `mirrors` (else a full read re-buckets, see stale). */
  fits(mirrors: number): boolean {
    const count = bucketCountFor(mirrors);
    return this.buckets.length > 0 && count < this.buckets.length * 4 && count * 4 > this.buckets.length;
  }

  /**
   * `members`: per bucket, its new members (any order), or undefined for the same ones as now;
   * `fresh`: the rows to render (the others keep their text), rendered here bucket by bucket.
   */
  private async rebuild(
    members: Map<number, string[] | undefined>, fresh: Map<string, MirrorRow>, yieldTo: () => Promise<unknown>, yieldEvery: number,
  ): Promise<void> {
    /** The same members: the fresh ones of each bucket, found by bucket instead of looking up every member. */
    const renderedIn = new Map<number, string[]>();
    for (const mirror of fresh.keys()) {
      const b = this.entries.get(mirror)?.bucket;
      if (b !== undefined && members.has(b) && members.get(b) === undefined) {
        const list = renderedIn.get(b);
        if (list === undefined) renderedIn.set(b, [mirror]);
        else list.push(mirror);
      }
    }
    let built = 0;
    for (const [b, listed] of members) {
      const old = this.buckets[b];
      let mirrors: readonly string[];
      let sources: Source[];
      if (listed === undefined) {
        mirrors = old!.mirrors;
        sources = new Array<Source>(mirrors.length);
        for (let j = 0; j < mirrors.length; j++) sources[j] = j;
        for (const mirror of renderedIn.get(b) ?? []) sources[sortedIndex(mirrors, mirror)] = renderMirror(fresh.get(mirror)!, this.families);
      } else {
        const index = new Map(old?.mirrors.map((m, j) => [m, j]));
        mirrors = listed.sort();
        sources = mirrors.map((m) => {
          const row = fresh.get(m);
          return row === undefined ? index.get(m)! : renderMirror(row, this.families);
        });
      }
      this.buckets[b] = mirrors.length === 0 ? undefined : buildBucket(this.families.length, mirrors, sources, old, this.scratch);
      built += mirrors.length;
      if (built >= yieldEvery) {
        built = 0;
        await yieldTo();
      }
    }
  }

  private live: Bucket[] = [];

  private liveBuckets(changed: boolean): Bucket[] {
    if (changed || this.live.length === 0) this.live = this.buckets.filter((b): b is Bucket => b !== undefined);
    return this.live;
  }

  has(mirror: string): boolean {
    return this.entries.has(mirror);
  }

  get size(): number {
    return this.entries.size;
  }
}
