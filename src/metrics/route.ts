/**
 * GET /metrics: the daemon's own families, then every mirror's families from one catalog snapshot.
 *
 * The per-mirror text comes from the snapshot's cache (buckets of mirrors, one buffer per family,
 * see mirrors.ts) and is handed to the socket family by family without copying, in corked writevs.
 * With `Accept-Encoding: gzip` the same is sent as cached deflate pieces in one gzip member.
 *
 * Most scrapes read nothing from the catalog: the cache follows the catalog's changes, and a scrape
 * only checks that nothing changed since (snapshot.ts, watch.ts). When a scrape must read:
 *
 * Scrape budget: Prometheus sends `X-Prometheus-Scrape-Timeout-Seconds`; the catalog read may use
 * that minus STREAM_RESERVE_MS (DEFAULT_SCRAPE_TIMEOUT_S without the header). A read that takes
 * longer is not waited for: the answer carries the last good snapshot and catalog_up 0 (see
 * snapshot.ts), which beats a failed scrape that would blank every per-mirror series at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import zlib from 'node:zlib';
import type { Registry } from 'prom-client';
import { sliceYielder } from '../async.js';
import type { HttpServer } from '../http/server.js';
import { CATALOG_UP, SCRAPE_DURATION, SNAPSHOT_TIMESTAMP } from './daemon.js';
import { CONTENT_TYPES, type Family, familyHeader, type Format, negotiateFormat, renderRegistry } from './exposition.js';
import { crc32Combine, crc32ShiftOperator } from './crc32.js';
import { type Bucket, type GzipPiece, MIRROR_FAMILIES } from './mirrors.js';
import type { MirrorSnapshots, ScrapeSnapshot } from './snapshot.js';

export const DEFAULT_SCRAPE_TIMEOUT_S = 10;
/** Kept back from the scrape timeout for rendering and sending the answer. */
export const STREAM_RESERVE_MS = 500;
export const MIN_READ_BUDGET_MS = 100;
/** Longest the event loop is kept compressing before other work gets a turn. */
export const COMPRESS_SLICE_MS = 5;
/**
 * Scrapes answered at once, counted until each answer is sent or its connection gone; more get 503.
 * Concurrent scrapes share the cached buffers, but a slow reader keeps its snapshot's buckets (and
 * what the socket has not sent yet) alive, so the number of them is what bounds memory.
 */
export const MAX_CONCURRENT_SCRAPES = 8;
/**
 * An answer still unsent this long after the scrape's timeout is cut off: the scraper has given up
 * on it (Prometheus does at its timeout), and a reader that stalls must not hold a slot for good.
 */
export const SEND_GRACE_MS = 5_000;
/** The same bound for a client that sent no scrape timeout (curl, a browser). */
export const SEND_TIMEOUT_WITHOUT_HEADER_MS = 60_000;

export interface MetricsRouteOptions {
  registry: Registry;
  snapshots: MirrorSnapshots;
}

/** The scrape's timeout from Prometheus' `X-Prometheus-Scrape-Timeout-Seconds`, if it sent a usable one. */
function scrapeTimeoutMs(header: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(header) ? header[0] : header;
  const seconds = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
}

/** How long this scrape may wait for the catalog, from Prometheus' timeout header. */
export function readBudgetMs(header: string | string[] | undefined): number {
  const timeoutMs = scrapeTimeoutMs(header) ?? DEFAULT_SCRAPE_TIMEOUT_S * 1000;
  return Math.max(MIN_READ_BUDGET_MS, timeoutMs - STREAM_RESERVE_MS);
}

function scrapeFamilies(scrape: ScrapeSnapshot, format: Format): string {
  const gauge = (family: Family, value: number) => `${familyHeader(family, format)}${family.name} ${value}\n`;
  return (
    gauge(CATALOG_UP, scrape.catalogUp ? 1 : 0) +
    gauge(SNAPSHOT_TIMESTAMP, scrape.snapshot?.takenAtSeconds ?? 0) +
    gauge(SCRAPE_DURATION, scrape.readSeconds)
  );
}

/**
 * Hands every piece of the answer to the socket at once, corked, so they leave in writevs without
 * being copied (the pieces are immutable cached buffers: the socket's queue holds references, and a
 * slow scraper holds its snapshot's buckets, mostly shared with the current ones, never a copy).
 * Measured on 9,216 pieces of 13 MB: as fast as one 13 MB buffer, ~2 ms of event loop, while
 * copying them into write groups cost ~10 ms and the garbage.
 */
function writeAll(res: ServerResponse, head: Buffer, parts: readonly Buffer[], tail: readonly Buffer[]): void {
  res.cork();
  res.write(head);
  for (const part of parts) if (part.length > 0) res.write(part);
  for (const part of tail) if (part.length > 0) res.write(part);
  res.end();
  res.uncork();
}

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
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]);
/** BFINAL=1 with fixed Huffman codes and only the end-of-block code. */
const FINAL_EMPTY_BLOCK = Buffer.from([0x03, 0x00]);

const MIN_DEFLATE_CHUNK = 256;

/**
 * `chunkSize` sized to the text: zlib's sync call returns a view of its output chunk (16 KB by
 * default), so a 200-byte piece kept in the cache would hold 16 KB: 150 MB at 10,000 mirrors.
 */
function deflatePiece(text: Buffer): Buffer {
  return zlib.deflateRawSync(text, { ...DEFLATE_OPTIONS, chunkSize: Math.max(MIN_DEFLATE_CHUNK, text.length >> 2) });
}

function gzipTrailer(crc: number, length: number): Buffer {
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(length % 2 ** 32, 4);
  return trailer;
}

function gzipPiece(text: Buffer): GzipPiece {
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

const headerPieces = new Map<string, { text: Buffer; gzip: GzipPiece }>();

function headerPiece(family: Family, format: Format): { text: Buffer; gzip: GzipPiece } {
  const key = `${format}\u0000${family.name}`;
  let piece = headerPieces.get(key);
  if (piece === undefined) {
    const text = Buffer.from(familyHeader(family, format), 'utf8');
    piece = { text, gzip: gzipPiece(text) };
    headerPieces.set(key, piece);
  }
  return piece;
}

/**
 * Compresses what this scrape needs and no earlier scrape compressed: each bucket's family text
 * is deflated once in its life and cached on the (otherwise immutable) bucket. Synchronous in
 * slices of COMPRESS_SLICE_MS with yields between: per piece, zlib's one-shot async call costs
 * more than the compression itself (measured: 5,000 pieces of 12 KB, 400 ms sync against 2,200 ms
 * through the thread pool).
 */
async function compressBuckets(buckets: readonly Bucket[]): Promise<void> {
  const slice = sliceYielder(COMPRESS_SLICE_MS);
  for (const bucket of buckets) {
    if (!bucket.gzip.includes(undefined)) continue;
    compressBucket(bucket);
    await slice();
  }
}

let scrapesInFlight = 0;

/** How long an answer may take to send, from the scrape's timeout header (see SEND_GRACE_MS). */
export function sendDeadlineMs(header: string | string[] | undefined): number {
  const timeoutMs = scrapeTimeoutMs(header);
  return timeoutMs === undefined ? SEND_TIMEOUT_WITHOUT_HEADER_MS : timeoutMs + SEND_GRACE_MS;
}

export async function serveMetrics(req: IncomingMessage, res: ServerResponse, options: MetricsRouteOptions): Promise<void> {
  if (scrapesInFlight >= MAX_CONCURRENT_SCRAPES) {
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1' });
    res.end(`too many concurrent scrapes (at most ${MAX_CONCURRENT_SCRAPES})\n`);
    return;
  }
  // Held until the response closes (sent in full, or its connection gone), not until the last
  // write is queued: a slow reader's unsent answer is exactly what this bounds.
  scrapesInFlight++;
  const deadline = setTimeout(() => res.destroy(), sendDeadlineMs(req.headers['x-prometheus-scrape-timeout-seconds']));
  res.once('close', () => {
    clearTimeout(deadline);
    scrapesInFlight--;
  });
  await stream(req, res, options);
}

/** One family's gzip pieces across a snapshot's buckets, joined, with their combined CRC-32. */
interface FamilyGzip {
  pieces: readonly GzipPiece[];
  deflated: Buffer;
  crc: number;
  /** crc32ShiftOperator of the family's text length. */
  shift: number;
}

/** The last join of each family: most families of most snapshots keep every piece (see mirrors.ts). */
const lastFamilyGzip: (FamilyGzip | undefined)[] = [];

/**
 * Family `f` of the buckets as one deflated buffer and CRC, or the previous snapshot's when it
 * holds the very same pieces. One buffer, because the pieces are small (~200 bytes) and 73,000
 * tiny writes cost more than copying 16 MB once per changed snapshot (measured at 100,000); per
 * family, because a CRC is combined piece by piece (~0.7 µs each, 9,216 at 10,000 mirrors) and
 * most families come through a churn unchanged.
 */
function familyGzip(buckets: readonly Bucket[], f: number): FamilyGzip {
  const last = lastFamilyGzip[f];
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
  lastFamilyGzip[f] = joined;
  return joined;
}

/** The per-mirror part of an answer, assembled from a snapshot's buckets in one format. */
interface MirrorPart {
  plain: Buffer[];
  plainLength: number;
  /** For gzip: the deflated pieces, and the CRC-32 of the plain text they hold. */
  deflated?: Buffer[];
  deflatedLength?: number;
  crc?: number;
}

/**
 * Assembled parts by buckets array: the cache hands out the same array while nothing changed, so
 * an unchanged fleet's scrape reuses its whole previous answer (plain and gzip) outright.
 */
const assembled = new WeakMap<readonly Bucket[], Map<Format, MirrorPart>>();

function mirrorPart(buckets: readonly Bucket[], format: Format, gzip: boolean): MirrorPart {
  let byFormat = assembled.get(buckets);
  if (byFormat === undefined) assembled.set(buckets, (byFormat = new Map()));
  let part = byFormat.get(format);
  if (part === undefined) {
    const plain: Buffer[] = [];
    let plainLength = 0;
    for (const [f, family] of MIRROR_FAMILIES.entries()) {
      const header = headerPiece(family, format).text;
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
    for (const [f, family] of MIRROR_FAMILIES.entries()) {
      const header = headerPiece(family, format).gzip;
      const joined = familyGzip(buckets, f);
      deflated.push(header.deflated, joined.deflated);
      deflatedLength += header.deflated.length + joined.deflated.length;
      crc = crc32Combine(crc32Combine(crc, header.crc, header.shift), joined.crc, joined.shift);
    }
    Object.assign(part, { deflated, deflatedLength, crc });
  }
  return part;
}

async function stream(req: IncomingMessage, res: ServerResponse, options: MetricsRouteOptions): Promise<void> {
  const format = negotiateFormat(req.headers.accept);
  const gzip = acceptsGzip(req.headers['accept-encoding'] as string | undefined);
  // The daemon's own families are collected while the catalog is asked.
  const [scrape, own] = await Promise.all([
    options.snapshots.forScrape(readBudgetMs(req.headers['x-prometheus-scrape-timeout-seconds'])),
    renderRegistry(options.registry, format),
  ]);
  const buckets = scrape.snapshot?.buckets ?? [];
  if (gzip && req.method !== 'HEAD') await compressBuckets(buckets);
  const headers = {
    'content-type': CONTENT_TYPES[format],
    'cache-control': 'no-store',
    // The answer differs by format (OpenMetrics or text) and by encoding: caches must key on both.
    vary: 'Accept, Accept-Encoding',
    ...(gzip ? { 'content-encoding': 'gzip' } : {}),
  };
  if (req.method === 'HEAD') {
    res.writeHead(200, headers);
    res.end();
    return;
  }
  if (res.destroyed) return;
  const head = Buffer.from(own + scrapeFamilies(scrape, format), 'utf8');
  const tail = Buffer.from(format === 'openmetrics' ? '# EOF\n' : '', 'utf8');
  const part = mirrorPart(buckets, format, gzip);
  // The length is known before the first byte: no chunked encoding.
  if (!gzip) {
    res.writeHead(200, { ...headers, 'content-length': head.length + part.plainLength + tail.length });
    writeAll(res, head, part.plain, [tail]);
    return;
  }
  let crc = crc32Combine(zlib.crc32(head), part.crc!, crc32ShiftOperator(part.plainLength));
  if (tail.length > 0) crc = zlib.crc32(tail, crc);
  const deflatedHead = Buffer.concat([GZIP_HEADER, deflatePiece(head)]);
  const end = [deflatePiece(tail), FINAL_EMPTY_BLOCK, gzipTrailer(crc, head.length + part.plainLength + tail.length)];
  const length = deflatedHead.length + part.deflatedLength! + end.reduce((n, p) => n + p.length, 0);
  res.writeHead(200, { ...headers, 'content-length': length });
  writeAll(res, deflatedHead, part.deflated!, end);
}

export function registerMetricsRoute(server: HttpServer, options: MetricsRouteOptions): void {
  server.route('GET', /^\/metrics$/, (req, res) => serveMetrics(req, res, options));
}
