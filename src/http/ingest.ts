/**
 * POST /api/v1/updates: producers in any language enqueue updates over HTTP (docs/http.md).
 *
 * The pipeline, cheapest refusal first, so that a client without the token or with too much data
 * never makes the daemon read or hold its body:
 *   403 no token configured → 401 missing or wrong bearer token → 415 not application/json →
 *   413 Content-Length over 1 MiB → read the body, counting bytes (413 as soon as 1 MiB is passed,
 *   408 when it stalls for 10 s or takes 30 s in all) → 400 not UTF-8 / not JSON / not an update,
 *   an array or {updates:[…]} / empty / over 1000 → 400 with every invalid field, by index →
 *   enqueue all of them in one insert → 202 { accepted }.
 * All or nothing: one invalid update and nothing is enqueued. Any answer given before the body has
 * been read to its end closes the connection, so the rest of the body is never read.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PgBoss } from 'pg-boss';
import type { Logger } from '../log.js';
import { InvalidUpdateError, publishUpdates, type UpdateInput } from '../publish.js';
import { MAX_UPDATES_PER_MESSAGE } from '../update.js';
import { type HttpServer, sendJson } from './server.js';

export const INGEST_PATH = /^\/api\/v1\/updates$/;
export const MAX_BODY_BYTES = 1024 * 1024;
/** No byte of the body for this long: the client is gone or hostile. */
export const BODY_IDLE_TIMEOUT_MS = 10_000;
/** A 1 MiB body that takes longer than this in all is a slow-loris, not a producer. */
export const BODY_TOTAL_TIMEOUT_MS = 30_000;
/**
 * After an early answer, how long and how much of the unread body is drained (never kept) before
 * closing: a refused client costs the daemon at most this. A fast client may have more than this in
 * flight (Linux autotunes socket buffers to several MiB) and then sees a reset instead of the
 * answer: that is accepted, the answer is a courtesy, the bound is not.
 */
export const LINGER_MS = 1_000;
export const LINGER_MAX_BYTES = MAX_BODY_BYTES;
/** Node reads a socket in pieces of at most this, so the drain stops while one more read still fits. */
const SOCKET_READ_MAX_BYTES = 64 * 1024;

export interface IngestOptions {
  boss: PgBoss;
  /** Undefined: ingest is off and the route answers 403. */
  token: string | undefined;
  logger: Logger;
  /** MIRRORSTATE_MAX_FUTURE: the same future limit the consumer applies. */
  maxFutureMs?: number;
}

type Refusal = { status: number; error: string; headers?: Record<string, string> };

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Both sides hashed to the same length first, so the comparison takes the same time for every guess. */
function checkBearer(header: string | undefined, tokenDigest: Buffer): Refusal | undefined {
  const match = header === undefined ? null : /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match?.[1]) {
    return {
      status: 401,
      error: 'missing bearer token: send "Authorization: Bearer <token>" with the daemon\'s MIRRORSTATE_INGEST_TOKEN',
      headers: { 'www-authenticate': 'Bearer realm="mirrorstate"' },
    };
  }
  if (!timingSafeEqual(sha256(match[1]), tokenDigest)) {
    return {
      status: 401,
      error: 'wrong bearer token',
      headers: { 'www-authenticate': 'Bearer realm="mirrorstate", error="invalid_token"' },
    };
  }
  return undefined;
}

/**
 * `application/json`, optionally with `charset=utf-8`. JSON has no other encoding (RFC 8259), and
 * `+json` media types name other formats (merge patches, problem details), so neither is taken.
 */
function checkContentType(header: string | undefined): Refusal | undefined {
  const refuse = (why: string): Refusal => ({ status: 415, error: `${why}: send "Content-Type: application/json"` });
  if (header === undefined) return refuse('no Content-Type');
  const [type = '', ...params] = header.split(';');
  if (type.trim().toLowerCase() !== 'application/json') return refuse(`Content-Type ${JSON.stringify(header.slice(0, 100))} is not JSON`);
  for (const param of params) {
    const [name = '', value = ''] = param.split('=');
    if (name.trim().toLowerCase() !== 'charset') continue;
    const charset = value.trim().replace(/^"(.*)"$/, '$1').toLowerCase();
    if (charset !== 'utf-8' && charset !== 'utf8') return refuse(`charset ${JSON.stringify(charset.slice(0, 40))} is not UTF-8`);
  }
  return undefined;
}

function checkContentLength(header: string | undefined): Refusal | undefined {
  if (header === undefined) return undefined;
  const length = Number(header);
  if (!Number.isSafeInteger(length) || length < 0) return { status: 400, error: 'invalid Content-Length' };
  if (length > MAX_BODY_BYTES) return { status: 413, error: `body of ${length} bytes is over the limit of ${MAX_BODY_BYTES}` };
  return undefined;
}

type BodyResult = { ok: true; bytes: Buffer } | { ok: false; refusal: Refusal | undefined };

/**
 * Reads the body up to `MAX_BODY_BYTES`, never holding more. Resolves a refusal as soon as the
 * limit is passed or the body stalls; `refusal` undefined means the client went away.
 */
function readBody(req: IncomingMessage): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const finish = (result: BodyResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      clearTimeout(total);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      if (!result.ok) req.pause();
      resolve(result);
    };
    const timedOut = (error: string) => () => finish({ ok: false, refusal: { status: 408, error } });
    let idle = setTimeout(timedOut(`no body data for ${BODY_IDLE_TIMEOUT_MS / 1000} s`), BODY_IDLE_TIMEOUT_MS);
    const total = setTimeout(timedOut(`the body took over ${BODY_TOTAL_TIMEOUT_MS / 1000} s`), BODY_TOTAL_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > MAX_BODY_BYTES) {
        finish({ ok: false, refusal: { status: 413, error: `body is over the limit of ${MAX_BODY_BYTES} bytes` } });
        return;
      }
      chunks.push(chunk);
      clearTimeout(idle);
      idle = setTimeout(timedOut(`no body data for ${BODY_IDLE_TIMEOUT_MS / 1000} s`), BODY_IDLE_TIMEOUT_MS);
    };
    const onEnd = () => finish({ ok: true, bytes: Buffer.concat(chunks, received) });
    const onGone = () => finish({ ok: false, refusal: undefined });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
}

type Decoded = { ok: true; updates: unknown[] } | { ok: false; refusal: Refusal };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Bytes → the list of updates the body carries, with the same envelope rule as a queue job. */
function decodeBody(bytes: Buffer): Decoded {
  const bad = (error: string): Decoded => ({ ok: false, refusal: { status: 400, error } });
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bad('body is not valid UTF-8');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    // V8 parses iteratively, but deep nesting can still exhaust the stack: a RangeError, not a crash.
    if (err instanceof RangeError) return bad('body is not valid JSON: nested too deeply');
    return bad(`body is not valid JSON: ${(err as Error).message.slice(0, 200)}`);
  }
  let updates: unknown;
  if (Array.isArray(body)) updates = body;
  else if (isPlainObject(body) && 'updates' in body && !('mirror' in body)) {
    updates = body.updates;
    if (!Array.isArray(updates)) return bad('"updates" must be an array of updates');
  } else if (isPlainObject(body)) updates = [body];
  else return bad('body must be an update object, an array of updates, or { "updates": [ … ] }');
  const list = updates as unknown[];
  if (list.length === 0) return bad('no updates: send at least one');
  if (list.length > MAX_UPDATES_PER_MESSAGE) {
    return bad(`${list.length} updates in one request; at most ${MAX_UPDATES_PER_MESSAGE}: split them`);
  }
  return { ok: true, updates: list };
}

/**
 * Answers, then closes the connection, lingering first. Closing a socket with unread bytes makes the
 * kernel send a reset, and a client still sending its body may then lose the answer it was sent (it
 * sees ECONNRESET instead of 413). So the whole answer goes out at once, and what is still in flight
 * is drained and discarded for at most LINGER_MS / LINGER_MAX_BYTES before the connection is
 * closed. The response is ended only then: once Node considers a response finished it detaches the
 * request and its parser goes on reading the socket to the end of the body, whatever its size, out
 * of our sight (that is how the former 64 MiB bound was never enforced). While the response is open,
 * every body byte reaches the request here, counted, and reading stops at the bound.
 */
function answerAndClose(res: ServerResponse, refusal: Refusal, log: Logger): void {
  const req = res.req;
  const socket = req.socket;
  const text = JSON.stringify({ error: refusal.error });
  res.writeHead(refusal.status, {
    ...refusal.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    connection: 'close',
  });
  res.write(text);
  const readAtAnswer = socket.bytesRead;
  const started = performance.now();
  let drained = 0;
  let why = 'client closed';
  const close = (reason: 'end of body' | 'byte limit' | 'time limit' | 'error') => {
    if (res.writableEnded) return;
    why = reason;
    clearTimeout(timer);
    res.end();
    // Nothing left unread: Node closes gracefully once the answer is flushed. Else cut it off.
    if (reason !== 'end of body') socket.destroy();
  };
  const timer = setTimeout(() => close('time limit'), LINGER_MS);
  socket.once('close', () => {
    clearTimeout(timer);
    const drainedBytes = socket.bytesRead - readAtAnswer;
    log.debug({ drainedBytes, bodyBytes: drained, ms: Math.round(performance.now() - started), why }, 'closed after an early answer');
  });
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained + SOCKET_READ_MAX_BYTES > LINGER_MAX_BYTES) close('byte limit');
  });
  req.on('end', () => close('end of body'));
  req.on('error', () => close('error'));
  req.resume();
}

/** An answer given before the body is read to its end closes the connection: the rest is never kept. */
function refuse(res: ServerResponse, refusal: Refusal, closeConnection: boolean, log: Logger): void {
  if (closeConnection) return answerAndClose(res, refusal, log);
  for (const [name, value] of Object.entries(refusal.headers ?? {})) res.setHeader(name, value);
  sendJson(res, refusal.status, { error: refusal.error });
}

export function registerIngestRoute(server: HttpServer, options: IngestOptions): void {
  const log = options.logger.child({ component: 'ingest' });
  const tokenDigest = options.token === undefined ? undefined : sha256(options.token);

  server.route('POST', INGEST_PATH, async (req, res) => {
    const early =
      (tokenDigest === undefined
        ? { status: 403, error: 'ingest is off: the daemon has no MIRRORSTATE_INGEST_TOKEN' }
        : checkBearer(req.headers.authorization, tokenDigest)) ??
      checkContentType(req.headers['content-type']) ??
      checkContentLength(req.headers['content-length']);
    if (early) {
      refuse(res, early, true, log);
      return;
    }

    const body = await readBody(req);
    if (!body.ok) {
      if (body.refusal) {
        log.info({ status: body.refusal.status, error: body.refusal.error }, 'ingest body refused');
        refuse(res, body.refusal, true, log);
      } else req.destroy();
      return;
    }
    const decoded = decodeBody(body.bytes);
    if (!decoded.ok) {
      refuse(res, decoded.refusal, false, log);
      return;
    }

    let ids: string[];
    try {
      // publishUpdates validates whatever it is given; the cast only names what it checks for.
      ids = await publishUpdates(options.boss, decoded.updates as UpdateInput[], { maxFutureMs: options.maxFutureMs });
    } catch (err) {
      if (err instanceof InvalidUpdateError) {
        sendJson(res, 400, { error: err.message, errors: err.errors });
        return;
      }
      log.error({ err }, 'could not enqueue ingested updates');
      res.setHeader('retry-after', '5');
      sendJson(res, 503, { error: 'could not enqueue the updates: the queue database is unavailable; retry later' });
      return;
    }
    log.debug({ updates: decoded.updates.length, jobs: ids.length }, 'ingested');
    sendJson(res, 202, { accepted: decoded.updates.length });
  }, { open: true }); // its own bearer token, not the web config file's basic auth
}
