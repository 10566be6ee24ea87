/**
 * gzip for /metrics without compressing an answer per scrape: each bucket's family text is deflated
 * once in its life into a piece cached on the bucket, and an answer is those pieces, joined.
 */
import zlib from 'node:zlib';
import { sliceYielder } from '../async.js';
import { crc32ShiftOperator } from './crc32.js';
import type { Bucket, GzipPiece } from './textCache.js';

/** Longest the event loop is kept compressing before other work gets a turn. */
export const COMPRESS_SLICE_MS = 5;

/** gzip when the scraper lists it (Prometheus does) without refusing it (`q=0`). */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding = '', ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    return (coding === 'gzip' || coding === 'x-gzip') && !params.some((p) => /^q=0(\.0*)?$/.test(p));
  });
}

/**
 * gzip answers are one gzip member assembled from cached pieces: each piece is a raw deflate
 * stream ended with a sync flush (byte-aligned, not final), so pieces compressed independently
 * concatenate into one valid deflate stream; the answer is a gzip header, the pieces, an empty
 * final block and the CRC-32 and length of the whole text. One member rather than a gzip member
 * per piece, because `curl --compressed` (7.88) stops after the first member, while Prometheus
 * (Go's compress/gzip), zlib and browsers read either.
 */
const DEFLATE_OPTIONS = { level: zlib.constants.Z_BEST_SPEED, finishFlush: zlib.constants.Z_SYNC_FLUSH };
export const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]);
/** BFINAL=1 with fixed Huffman codes and only the end-of-block code. */
export const FINAL_EMPTY_BLOCK = Buffer.from([0x03, 0x00]);

const MIN_DEFLATE_CHUNK = 256;

/**
 * `chunkSize` sized to the text: zlib's sync call returns a view of its output chunk (16 KB by
 * default), so a piece of a few hundred bytes kept in the cache would hold the whole chunk: over
 * a fleet's pieces, many times the text itself (docs/performance.md, "A gzip piece's output chunk").
 */
export function deflatePiece(text: Buffer): Buffer {
  return zlib.deflateRawSync(text, { ...DEFLATE_OPTIONS, chunkSize: Math.max(MIN_DEFLATE_CHUNK, text.length >> 2) });
}

export function gzipTrailer(crc: number, length: number): Buffer {
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(length % 2 ** 32, 4);
  return trailer;
}

export function gzipPiece(text: Buffer): GzipPiece {
  return { deflated: deflatePiece(text), crc: zlib.crc32(text), shift: crc32ShiftOperator(text.length) };
}

/**
 * The gzip pieces a bucket lacks; their deflated bytes share one exact-size allocation, as the
 * bucket's text does.
 */
function compressBucket(bucket: Bucket): void {
  const made: [number, GzipPiece][] = [];
  let size = 0;
  for (let f = 0; f < bucket.text.length; f++) {
    if (bucket.gzip[f] !== undefined) continue;
    const piece = gzipPiece(bucket.text[f]!);
    made.push([f, piece]);
    size += piece.deflated.length;
  }
  const whole = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const [f, piece] of made) {
    const deflated = whole.subarray(at, at + piece.deflated.copy(whole, at));
    at += deflated.length;
    bucket.gzip[f] = { ...piece, deflated };
  }
}

/**
 * Compresses what this scrape needs and no earlier scrape compressed: each bucket's family text
 * is deflated once in its life and cached on the (otherwise immutable) bucket. Synchronous in
 * slices of COMPRESS_SLICE_MS with yields between: per piece, zlib's one-shot async call costs
 * more than the compression itself (docs/performance.md, "Compressing in slices").
 */
export async function compressBuckets(buckets: readonly Bucket[]): Promise<void> {
  const slice = sliceYielder(COMPRESS_SLICE_MS);
  for (const bucket of buckets) {
    if (!bucket.gzip.includes(undefined)) continue;
    compressBucket(bucket);
    await slice();
  }
}
