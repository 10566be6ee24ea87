/**
 * A raw HTTP client for the ingest tests: exact bytes and headers, streamed bodies, and answers
 * that arrive while the body is still being sent (413, 408) — which fetch does not show reliably.
 */
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';

export const TOKEN = 'test-token-0123456789';
export const INGEST = '/api/v1/updates';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

function toAnswer(status: number, headers: IncomingHttpHeaders, text: string): Answer {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status, headers, text, json };
}

export interface PostOptions {
  headers?: OutgoingHttpHeaders;
  /** Default: JSON content type and the test token. `null` leaves a header out. */
  contentType?: string | null;
  token?: string | null;
}

/** POSTs `body` (a value is sent as JSON; a string or Buffer as is) with Content-Length. */
export function post(baseUrl: string, body: unknown, options: PostOptions = {}): Promise<Answer> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return send(baseUrl, 'POST', INGEST, { ...requestHeaders(options), 'content-length': bytes.length }, bytes);
}

export function get(baseUrl: string, path: string): Promise<Answer> {
  return send(baseUrl, 'GET', path, {}, undefined);
}

function requestHeaders(options: PostOptions): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ...options.headers };
  const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
  const token = options.token === undefined ? TOKEN : options.token;
  if (contentType !== null) headers['content-type'] = contentType;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return headers;
}

/**
 * Sends the body and resolves with the answer, even when the server answers before the body is
 * all sent and then closes (a write error after the answer arrived is expected, not a failure).
 */
function send(baseUrl: string, method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(new URL(path, baseUrl), { method, headers, agent: false }, (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(toAnswer(res.statusCode ?? 0, res.headers, text)));
      res.on('error', () => resolve(toAnswer(res.statusCode ?? 0, res.headers, text)));
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.end(body);
  });
}

export interface StreamResult {
  answer: Answer;
  /** Body bytes the client managed to hand to its socket before the answer came. */
  bytesWritten: number;
  /** Whether the server closed the connection after answering. */
  closed: Promise<void>;
}

/**
 * Streams a chunked body: `chunks()` yields pieces until the server answers (it may never stop on
 * its own) or the generator ends; with `hangAfter` the body is left open, never finished.
 */
export function stream(
  baseUrl: string,
  chunks: Iterable<Buffer>,
  options: PostOptions & { hangAfter?: boolean } = {},
): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    let answered = false;
    let bytesWritten = 0;
    const req = httpRequest(new URL(INGEST, baseUrl), {
      method: 'POST',
      headers: { ...requestHeaders(options), 'transfer-encoding': 'chunked' },
      agent: false,
    });
    const closed = new Promise<void>((resolveClosed) => req.once('close', () => resolveClosed()));
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      const done = () => resolve({ answer: toAnswer(res.statusCode ?? 0, res.headers, text), bytesWritten, closed });
      res.on('end', done);
      res.on('error', done);
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const iterator = chunks[Symbol.iterator]();
    const pump = () => {
      while (!answered && !req.destroyed) {
        const next = iterator.next();
        if (next.done) {
          if (!options.hangAfter) req.end();
          return;
        }
        bytesWritten += next.value.length;
        if (!req.write(next.value)) {
          req.once('drain', pump);
          return;
        }
      }
    };
    req.flushHeaders();
    pump();
  });
}


export function update(mirror: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { mirror, status: 'running', observedAt: new Date().toISOString(), ...extra };
}
