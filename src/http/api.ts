/**
 * The read API (CONTRACT §4): GET /api/v1/mirrors, /api/v1/mirrors/{mirror} and
 * /api/v1/mirrors/{mirror}/transitions. `{mirror}` is URL-encoded (a `/` in a name arrives as %2F).
 * Every answer comes from one statement or one snapshot transaction (see catalog/readRows.ts).
 * Bad parameters answer 400 naming the parameter: `{ "error": "…", "parameter": "events" }`.
 */
import type { Pool } from '../db.js';
import { readMirror } from '../catalog/readMirror.js';
import { readMirrors } from '../catalog/readMirrors.js';
import { DEFAULT_EVENTS, DEFAULT_TRANSITIONS_PAGE, MAX_EVENTS, MAX_TRANSITIONS_PAGE } from '../catalog/readRows.js';
import { readTransitions } from '../catalog/readTransitions.js';
import { type HttpServer, sendError, sendJson } from './server.js';

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

export function registerApiRoutes(server: HttpServer, { pool, schema }: ApiOptions): void {
  server.route('GET', /^\/api\/v1\/mirrors\/?$/, async (_req, res, _params, url) => {
    try {
      const dropped = booleanParam(url, 'dropped');
      sendJson(res, 200, { mirrors: await readMirrors(pool, schema, { dropped }) });
    } catch (err) {
      answerBadParameter(res, err);
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
