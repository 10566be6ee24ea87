/**
 * The read API (CONTRACT §4): GET /api/v1/mirrors, /api/v1/mirrors/{mirror} and
 * /api/v1/mirrors/{mirror}/transitions. `{mirror}` is URL-encoded (a `/` in a name arrives as %2F).
 * Every answer comes from one statement or one snapshot transaction (see catalog/views.ts).
 * Bad parameters answer 400 naming the parameter: `{ "error": "…", "parameter": "events" }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pool } from '../db/pool.js';
import { readMirror } from '../catalog/readMirror.js';
import { readMirrorPages } from '../catalog/readMirrors.js';
import { DEFAULT_EVENTS, DEFAULT_TRANSITIONS_PAGE, MAX_EVENTS, MAX_TRANSITIONS_PAGE } from '../catalog/views.js';
import { readTransitions } from '../catalog/readTransitions.js';
import { type HttpServer, sendError, sendJson } from './server.js';

/** How long a reader of the mirror list may leave a page unread before the answer is cut off. */
export const PAGE_DRAIN_TIMEOUT_MS = 30_000;

export interface ApiOptions {
  pool: Pool;
  schema: string;
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

export function mirrorParam(encoded: string | undefined): string {
  try {
    return decodeURIComponent(encoded ?? '');
  } catch {
    throw new BadParameter('mirror', `mirror must be a URL-encoded name, got ${JSON.stringify(encoded)}`);
  }
}

function answerBadParameter(res: Parameters<typeof sendError>[0], err: unknown): void {
  if (!(err instanceof BadParameter)) throw err;
  sendError(res, 400, err.message, { parameter: err.parameter });
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

export function registerApiRoutes(server: HttpServer, { pool, schema }: ApiOptions): void {
  server.route('GET', /^\/api\/v1\/mirrors\/?$/, async (req, res, _params, url) => {
    let dropped: boolean;
    try {
      dropped = booleanParam(url, 'dropped');
    } catch (err) {
      answerBadParameter(res, err);
      return;
    }
    await streamMirrorList(req, res, pool, schema, dropped);
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
      answerBadParameter(res, err);
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
      answerBadParameter(res, err);
    }
  });
}
