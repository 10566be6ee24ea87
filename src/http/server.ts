/**
 * The HTTP server: a small router over node:http. Routes are registered by concern (metrics,
 * health, read API, ingest); each answers JSON errors as `{ "error": "…" }`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void> | void;

interface Route {
  method: string;
  pattern: RegExp;
  handler: RouteHandler;
}

/** Slow or never-ending requests must not hold a connection forever (see the ingest route). */
export const REQUEST_TIMEOUT_MS = 30_000;
export const HEADERS_TIMEOUT_MS = 10_000;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, error: string, extra: object = {}): void {
  sendJson(res, status, { error, ...extra });
}

export class HttpServer {
  private readonly routes: Route[] = [];
  private server: Server | undefined;
  private readonly log: Logger;

  constructor(logger: Logger) {
    this.log = logger.child({ component: 'http' });
  }

  /** `pattern` is matched against the path; capture groups become `params` (still URL-encoded). */
  route(method: string, pattern: RegExp, handler: RouteHandler): this {
    this.routes.push({ method, pattern, handler });
    return this;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // Routes match the path as sent: URL() resolves `.` and `..` segments (even `%2E%2E`), which
    // would make mirrors named `.` or `..` unreachable.
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    let pathMatched = false;
    for (const route of this.routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      pathMatched = true;
      if (route.method !== req.method && !(route.method === 'GET' && req.method === 'HEAD')) continue;
      await route.handler(req, res, match.slice(1), url);
      return;
    }
    if (pathMatched) sendError(res, 405, `method ${req.method} not allowed on ${path}`);
    else sendError(res, 404, `no route ${path}`);
  }

  async start(port: number, host: string): Promise<AddressInfo> {
    const server = createServer((req, res) => {
      this.dispatch(req, res).catch((err: unknown) => {
        this.log.error({ err, url: req.url }, 'request failed');
        if (!res.headersSent) sendError(res, 500, 'internal error; see the daemon log');
        else res.destroy();
      });
    });
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    server.keepAliveTimeout = 5_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    this.log.info({ host: address.address, port: address.port }, 'http listening');
    return address;
  }

  /** Stops accepting connections and closes idle ones. Idempotent. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeIdleConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
