/**
 * The read API (docs/http.md): GET /api/v1/mirrors, /api/v1/mirrors/{mirror} and
 * /api/v1/mirrors/{mirror}/transitions. `{mirror}` is URL-encoded (a `/` in a name arrives as %2F).
 * Every answer comes from one statement or one snapshot transaction (see catalog/views.ts).
 * Bad parameters answer 400 naming the parameter: `{ "error": "…", "parameter": "events" }`; a catalog
 * that cannot be read answers 503, as the status page does (docs/http.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { readMirror } from '../catalog/readMirror.js';
import { MAX_MIRRORS_PAGE, readMirrorKeysetPage, readMirrorPages } from '../catalog/readMirrors.js';
import { DEFAULT_EVENTS, DEFAULT_TRANSITIONS_PAGE, MAX_EVENTS, MAX_TRANSITIONS_PAGE } from '../catalog/views.js';
import { readTransitions } from '../catalog/readTransitions.js';
import { type HttpServer, sendError, sendJson } from './server.js';

/** How long a reader of the mirror list may leave a page unread before the answer is cut off. */
export const PAGE_DRAIN_TIMEOUT_MS = 30_000;

export interface ApiOptions {
  pool: Pool;
  schema: string;
  logger: Logger;
}

export class BadParameter extends Error {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}

const MAX_ID = 9_007_199_254_740_991;

export function integerParam(url: URL, name: string, min: number, max: number, fallback: number | undefined): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new BadParameter(name, `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function booleanParam(url: URL, name: string): boolean {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === 'false') return false;
  if (raw === 'true' || raw === '') return true;
  throw new BadParameter(name, `${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/**
 * A text the catalog could hold. PostgreSQL's text cannot hold a NUL: a name or a cursor with one
 * names nothing, and sent to the catalog it would fail the statement (a 5xx for a bad request).
 */
export function textValue(name: string, value: string): string {
  if (value.includes('\0')) throw new BadParameter(name, `${name} must not contain a NUL character`);
  return value;
}

export function mirrorParam(encoded: string | undefined): string {
  let name: string;
  try {
    name = decodeURIComponent(encoded ?? '');
  } catch {
    throw new BadParameter('mirror', `mirror must be a URL-encoded name, got ${JSON.stringify(encoded)}`);
  }
  return textValue('mirror', name);
}

export const CATALOG_UNAVAILABLE = 'catalog unavailable: it could not be read just now; the daemon log says why, /readyz whether the daemon is ready';

/**
 * Bad parameters answer 400 naming the parameter; anything else thrown while reading is the
 * catalog failing, which answers 503 as the status page does, however it failed.
 */
function answerFailure(res: ServerResponse, err: unknown, log: Logger): void {
  if (err instanceof BadParameter) {
    sendError(res, 400, err.message, { parameter: err.parameter });
    return;
  }
  log.error({ err }, 'read API could not read the catalog');
  if (res.headersSent) res.destroy();
  else sendError(res, 503, CATALOG_UNAVAILABLE);
}

class ReaderGone extends Error {}

/** Resolves once `res` can take more, rejects when its reader is gone or stalls past the timeout. */
function drained(res: ServerResponse, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) {
      reject(new ReaderGone('the reader closed the connection'));
      return;
    }
    const done = (err?: Error) => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new ReaderGone('the reader closed the connection'));
    const timer = setTimeout(() => done(new ReaderGone(`the reader took no data for ${timeoutMs} ms`)), timeoutMs);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/**
 * `{"mirrors":[…]}` streamed page by page from one snapshot (readMirrorPages): one JSON.stringify
 * of the whole list would hold the whole fleet in memory and block the event loop for as long as a
 * large fleet takes to serialize (docs/performance.md, Figures behind the design); a page is small,
 * and a slow reader holds one page, not the fleet. A failure after the
 * first page can no longer change the status: the connection is cut, so the reader gets invalid
 * JSON rather than a short list that looks whole.
 */
async function streamMirrorList(req: IncomingMessage, res: ServerResponse, pool: Pool, schema: string, dropped: boolean): Promise<void> {
  const headers = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
  if (req.method === 'HEAD') {
    res.writeHead(200, headers);
    res.end();
    return;
  }
  let pages = 0;
  try {
    await readMirrorPages(pool, schema, { dropped }, async (page) => {
      if (res.destroyed) throw new ReaderGone('the reader closed the connection');
      if (pages++ === 0) res.writeHead(200, headers);
      const json = page.map((m) => JSON.stringify(m)).join(',');
      if (!res.write(pages === 1 ? `{"mirrors":[${json}` : `,${json}`)) await drained(res, PAGE_DRAIN_TIMEOUT_MS);
    });
  } catch (err) {
    if (!(err instanceof ReaderGone)) throw err;
    res.destroy();
    return;
  }
  if (pages === 0) sendJson(res, 200, { mirrors: [] });
  else res.end(']}');
}

export function registerApiRoutes(server: HttpServer, { pool, schema, logger }: ApiOptions): void {
  const log = logger.child({ component: 'api' });
  server.route('GET', /^\/api\/v1\/mirrors\/?$/, async (req, res, _params, url) => {
    try {
      const dropped = booleanParam(url, 'dropped');
      const after = url.searchParams.get('after');
      const limit = integerParam(url, 'limit', 1, MAX_MIRRORS_PAGE, after === null ? undefined : MAX_MIRRORS_PAGE);
      if (limit === undefined) await streamMirrorList(req, res, pool, schema, dropped);
      else {
        const page = await readMirrorKeysetPage(pool, schema, { dropped, limit, ...(after === null ? {} : { after: textValue('after', after) }) });
        sendJson(res, 200, page);
      }
    } catch (err) {
      answerFailure(res, err, log);
    }
  });

  server.route('GET', /^\/api\/v1\/mirrors\/([^/]+)\/transitions$/, async (_req, res, params, url) => {
    try {
      const mirror = mirrorParam(params[0]);
      const limit = integerParam(url, 'limit', 1, MAX_TRANSITIONS_PAGE, DEFAULT_TRANSITIONS_PAGE) as number;
      const before = integerParam(url, 'before', 1, MAX_ID, undefined);
      const page = await readTransitions(pool, schema, mirror, { limit, before });
      if (page) sendJson(res, 200, page);
      else sendError(res, 404, `no mirror named ${JSON.stringify(mirror)}`);
    } catch (err) {
      answerFailure(res, err, log);
    }
  });

  server.route('GET', /^\/api\/v1\/mirrors\/([^/]+)$/, async (_req, res, params, url) => {
    try {
      const mirror = mirrorParam(params[0]);
      const events = integerParam(url, 'events', 0, MAX_EVENTS, DEFAULT_EVENTS) as number;
      const detail = await readMirror(pool, schema, mirror, { events });
      if (detail) sendJson(res, 200, detail);
      else sendError(res, 404, `no mirror named ${JSON.stringify(mirror)}`);
    } catch (err) {
      answerFailure(res, err, log);
    }
  });
}
