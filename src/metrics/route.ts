/**
 * GET /metrics: the daemon's own families, then every mirror's families from one catalog snapshot.
 *
 * The per-mirror text comes from the snapshot's cache and is streamed family by family in chunks
 * of STREAM_CHUNK_MIRRORS mirrors, yielding to the event loop between chunks and honouring
 * backpressure, so a scrape of 10,000 mirrors (> 120,000 series) never blocks the loop for long.
 *
 * Scrape budget: Prometheus sends `X-Prometheus-Scrape-Timeout-Seconds`; the catalog read may use
 * that minus STREAM_RESERVE_MS (DEFAULT_SCRAPE_TIMEOUT_S without the header). A read that takes
 * longer is not waited for: the answer carries the last good snapshot and catalog_up 0 (see
 * snapshot.ts), which beats a failed scrape that would blank every per-mirror series at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Registry } from 'prom-client';
import type { HttpServer } from '../http/server.js';
import { CATALOG_UP, SCRAPE_DURATION, SNAPSHOT_TIMESTAMP } from './daemon.js';
import { CONTENT_TYPES, type Family, familyHeader, type Format, negotiateFormat, renderRegistry } from './exposition.js';
import { MIRROR_FAMILIES } from './mirrors.js';
import type { MirrorSnapshots, ScrapeSnapshot } from './snapshot.js';

export const DEFAULT_SCRAPE_TIMEOUT_S = 10;
/** Kept back from the scrape timeout for rendering and sending the answer. */
export const STREAM_RESERVE_MS = 500;
export const MIN_READ_BUDGET_MS = 100;
export const STREAM_CHUNK_MIRRORS = 2000;

export interface MetricsRouteOptions {
  registry: Registry;
  snapshots: MirrorSnapshots;
}

/** How long this scrape may wait for the catalog, from Prometheus' timeout header. */
export function readBudgetMs(header: string | string[] | undefined): number {
  const raw = Array.isArray(header) ? header[0] : header;
  const seconds = raw === undefined ? NaN : Number(raw);
  const timeoutMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_SCRAPE_TIMEOUT_S * 1000;
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

/** Writes `chunk`; waits for the socket to drain when its buffer is full. False once the client is gone. */
async function send(res: ServerResponse, chunk: string | Buffer): Promise<boolean> {
  if (res.destroyed) return false;
  if (!res.write(chunk)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }
  return !res.destroyed;
}

export async function serveMetrics(req: IncomingMessage, res: ServerResponse, options: MetricsRouteOptions): Promise<void> {
  const format = negotiateFormat(req.headers.accept);
  const scrape = await options.snapshots.forScrape(readBudgetMs(req.headers['x-prometheus-scrape-timeout-seconds']));
  const own = await renderRegistry(options.registry, format);
  res.writeHead(200, { 'content-type': CONTENT_TYPES[format], 'cache-control': 'no-store' });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  if (!(await send(res, own + scrapeFamilies(scrape, format)))) return;
  const mirrors = scrape.snapshot?.mirrors ?? [];
  for (const [f, family] of MIRROR_FAMILIES.entries()) {
    if (!(await send(res, familyHeader(family, format)))) return;
    for (let start = 0; start < mirrors.length; start += STREAM_CHUNK_MIRRORS) {
      const end = Math.min(start + STREAM_CHUNK_MIRRORS, mirrors.length);
      const parts: Buffer[] = new Array<Buffer>(end - start);
      for (let i = start; i < end; i++) parts[i - start] = mirrors[i]![f]!;
      if (!(await send(res, Buffer.concat(parts)))) return;
      await yieldToEventLoop();
    }
  }
  res.end(format === 'openmetrics' ? '# EOF\n' : '');
}

export function registerMetricsRoute(server: HttpServer, options: MetricsRouteOptions): void {
  server.route('GET', /^\/metrics$/, (req, res) => serveMetrics(req, res, options));
}
