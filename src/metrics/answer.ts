/**
 * The per-mirror part of a /metrics answer, assembled from a snapshot's buckets (textCache.ts): per
 * family its header, then every bucket's text of that family; for gzip, the same as cached deflate
 * pieces (gzip.ts) with their combined CRC-32. What it assembles is kept for the next scrape: the
 * cache hands out the same buckets array while nothing changed, so an unchanged fleet's scrape
 * reuses its whole previous answer (plain and gzip) outright, and a changed one re-joins only the
 * families whose pieces changed, which the catalog read has usually joined already (GzipFamilies).
 * The route owns a MirrorAnswers for its server; the snapshots own the GzipFamilies.
 */
import { crc32Combine, crc32ShiftOperator } from './crc32.js';
import { type Family, familyHeader, type Format } from './exposition.js';
import type { MirrorFamily } from './families.js';
import { gzipPiece } from './gzip.js';
import type { Bucket, GzipPiece } from './textCache.js';

/** The per-mirror part of an answer, assembled from a snapshot's buckets in one format. */
export interface MirrorPart {
  plain: Buffer[];
  plainLength: number;
  /** For gzip: the deflated pieces, and the CRC-32 of the plain text they hold. */
  deflated?: Buffer[];
  deflatedLength?: number;
  crc?: number;
}

/** One family's gzip pieces across a snapshot's buckets, joined, with their combined CRC-32. */
interface FamilyGzip {
  pieces: readonly GzipPiece[];
  deflated: Buffer;
  crc: number;
  /** crc32ShiftOperator of the family's text length. */
  shift: number;
}

/**
 * Each family's gzip pieces across a snapshot's buckets as one deflated buffer and CRC, kept from
 * one snapshot to the next: the catalog read joins what it compressed (snapshot.ts), so the gzip
 * scrapes that follow find every family joined. One per MirrorSnapshots, which owns the reads.
 */
export class GzipFamilies {
  /** The last join of each family: most families of most snapshots keep every piece (see textCache.ts). */
  private readonly last: (FamilyGzip | undefined)[] = [];

  /** Joins every family of `buckets` (their pieces made: compressBuckets), yielding between families. */
  async joinAll(buckets: readonly Bucket[], families: number, yieldTo: () => Promise<unknown>): Promise<void> {
    for (let f = 0; f < families; f++) {
      this.join(buckets, f);
      await yieldTo();
    }
  }

  /**
   * Family `f` of the buckets as one deflated buffer and CRC, or the previous snapshot's when it
   * holds the very same pieces. One buffer, because the pieces are small and tens of thousands of
   * tiny writes cost more than copying the family once per changed snapshot; per family, because
   * a CRC is combined piece by piece and most families come through a churn unchanged
   * (docs/performance.md, "Joining gzip pieces").
   */
  join(buckets: readonly Bucket[], f: number): FamilyGzip {
    const last = this.last[f];
    if (last !== undefined && last.pieces.length === buckets.length && buckets.every((b, i) => b.gzip[f] === last.pieces[i])) {
      return last;
    }
    const pieces = buckets.map((b) => b.gzip[f]!);
    let crc = 0;
    let textLength = 0;
    for (const [i, piece] of pieces.entries()) {
      crc = crc32Combine(crc, piece.crc, piece.shift);
      textLength += buckets[i]!.text[f]!.length;
    }
    const joined = { pieces, deflated: Buffer.concat(pieces.map((p) => p.deflated)), crc, shift: crc32ShiftOperator(textLength) };
    this.last[f] = joined;
    return joined;
  }
}

export class MirrorAnswers {
  constructor(private readonly families: readonly MirrorFamily[], private readonly gzipFamilies: GzipFamilies) {}

  /** Each family's header line(s) per format, as text and as a gzip piece: made once. */
  private readonly headerPieces = new Map<string, { text: Buffer; gzip: GzipPiece }>();
  /** Assembled parts by buckets array (see above). */
  private readonly assembled = new WeakMap<readonly Bucket[], Map<Format, MirrorPart>>();

  /** The per-mirror part of an answer in `format`, with its gzip form when `gzip` (the buckets' pieces made: compressBuckets). */
  part(buckets: readonly Bucket[], format: Format, gzip: boolean): MirrorPart {
    let byFormat = this.assembled.get(buckets);
    if (byFormat === undefined) this.assembled.set(buckets, (byFormat = new Map()));
    let part = byFormat.get(format);
    if (part === undefined) {
      const plain: Buffer[] = [];
      let plainLength = 0;
      for (const [f, family] of this.families.entries()) {
        const header = this.headerPiece(family, format).text;
        plain.push(header);
        plainLength += header.length;
        for (const bucket of buckets) {
          plain.push(bucket.text[f]!);
          plainLength += bucket.text[f]!.length;
        }
      }
      byFormat.set(format, (part = { plain, plainLength }));
    }
    if (gzip && part.deflated === undefined) {
      const deflated: Buffer[] = [];
      let deflatedLength = 0;
      let crc = 0;
      for (const [f, family] of this.families.entries()) {
        const header = this.headerPiece(family, format).gzip;
        const joined = this.gzipFamilies.join(buckets, f);
        deflated.push(header.deflated, joined.deflated);
        deflatedLength += header.deflated.length + joined.deflated.length;
        crc = crc32Combine(crc32Combine(crc, header.crc, header.shift), joined.crc, joined.shift);
      }
      Object.assign(part, { deflated, deflatedLength, crc });
    }
    return part;
  }

  private headerPiece(family: Family, format: Format): { text: Buffer; gzip: GzipPiece } {
    const key = `${format}\u0000${family.name}`;
    let piece = this.headerPieces.get(key);
    if (piece === undefined) {
      const text = Buffer.from(familyHeader(family, format), 'utf8');
      piece = { text, gzip: gzipPiece(text) };
      this.headerPieces.set(key, piece);
    }
    return piece;
  }
}
