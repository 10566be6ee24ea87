/**
 * GET /metrics: the daemon's own families, then every mirror's families from one catalog snapshot.
 *
 * The per-mirror text comes from the snapshot's cache (buckets of mirrors, one buffer per family,
 * see textCache.ts), assembled by answer.ts and handed to the socket family by family without
 * copying, in corked writevs. With `Accept-Encoding: gzip` the same is sent as cached deflate pieces
 * in one gzip member (gzip.ts).
 *
 * What lives from scrape to scrape (the scrapes in flight, the assembled answers) lives in the
 * MetricsRoute that registerMetricsRoute makes for its server.
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
import type { HttpServer } from '../http/server.js';
import { MirrorAnswers } from './answer.js';
import { crc32Combine, crc32ShiftOperator } from './crc32.js';
import { CATALOG_UP, SCRAPE_DURATION, SNAPSHOT_TIMESTAMP } from './daemon.js';
import { CONTENT_TYPES, type Family, familyHeader, type Format, negotiateFormat, renderRegistry } from './exposition.js';
import { acceptsGzip, compressBuckets, deflatePiece, FINAL_EMPTY_BLOCK, GZIP_HEADER, gzipTrailer } from './gzip.js';
import type { MirrorSnapshots, ScrapeSnapshot } from './snapshot.js';

export const DEFAULT_SCRAPE_TIMEOUT_S = 10;
/** Kept back from the scrape timeout for rendering and sending the answer. */
export const STREAM_RESERVE_MS = 500;
export const MIN_READ_BUDGET_MS = 100;
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
 * As fast as one buffer of the whole answer, without the copy (docs/performance.md, "Writing an
 * answer").
 */
function writeAll(res: ServerResponse, head: Buffer, parts: readonly Buffer[], tail: readonly Buffer[]): void {
  res.cork();
  res.write(head);
  for (const part of parts) if (part.length > 0) res.write(part);
  for (const part of tail) if (part.length > 0) res.write(part);
  res.end();
  res.uncork();
}

/** How long an answer may take to send, from the scrape's timeout header (see SEND_GRACE_MS). */
export function sendDeadlineMs(header: string | string[] | undefined): number {
  const timeoutMs = scrapeTimeoutMs(header);
  return timeoutMs === undefined ? SEND_TIMEOUT_WITHOUT_HEADER_MS : timeoutMs + SEND_GRACE_MS;
}

export class MetricsRoute {
  /** Scrapes counted against MAX_CONCURRENT_SCRAPES. */
  private scrapesInFlight = 0;
  private readonly answers: MirrorAnswers;

  constructor(private readonly options: MetricsRouteOptions) {
    this.answers = new MirrorAnswers(options.snapshots.families, options.snapshots.gzipFamilies);
  }

  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.scrapesInFlight >= MAX_CONCURRENT_SCRAPES) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1' });
      res.end(`too many concurrent scrapes (at most ${MAX_CONCURRENT_SCRAPES})\n`);
      return;
    }
    // Held until the response closes (sent in full, or its connection gone), not until the last
    // write is queued: a slow reader's unsent answer is exactly what this bounds.
    this.scrapesInFlight++;
    const deadline = setTimeout(() => res.destroy(), sendDeadlineMs(req.headers['x-prometheus-scrape-timeout-seconds']));
    res.once('close', () => {
      clearTimeout(deadline);
      this.scrapesInFlight--;
    });
    await this.stream(req, res);
  }

  private async stream(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const format = negotiateFormat(req.headers.accept);
    const gzip = acceptsGzip(req.headers['accept-encoding'] as string | undefined);
    // The daemon's own families are collected while the catalog is asked.
    const [scrape, own] = await Promise.all([
      this.options.snapshots.forScrape(readBudgetMs(req.headers['x-prometheus-scrape-timeout-seconds']), gzip && req.method !== 'HEAD'),
      renderRegistry(this.options.registry, format),
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
    const part = this.answers.part(buckets, format, gzip);
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
}

/** Serves GET /metrics on `server` from a MetricsRoute of its own. */
export function registerMetricsRoute(server: HttpServer, options: MetricsRouteOptions): MetricsRoute {
  const route = new MetricsRoute(options);
  server.route('GET', /^\/metrics$/, (req, res) => route.serve(req, res));
  return route;
}
