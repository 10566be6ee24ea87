/**
 * The HTTP server: a small router over node:http, or node:https when the web configuration file
 * (docs/security.md) asks for TLS. Routes are registered by concern (metrics, health, read API,
 * ingest); each answers JSON errors as `{ "error": "…" }`.
 *
 * Every request, before any route runs (docs/http.md, "Bad requests"):
 *   1. the headers of the web configuration file are set;
 *   2. the request target is read as RFC 9112 says a server must: origin form (`/path?query`) or
 *      absolute form (`http://host/path?query`, routed by its path); anything else is a 400;
 *   3. basic auth, when the file lists users, for every route not registered `open`
 *      (the probes, and ingest with its own bearer token);
 *   4. a path no route takes is a 404; a method the path's routes do not take a 405 with `Allow`.
 */
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import { BasicAuth } from './webConfig/basicAuth.js';
import type { TlsSettings, WebConfig } from './webConfig/read.js';
import { WebConfigError } from './webConfig/read.js';
import { WebConfigWatch } from './webConfig/watch.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void> | void;

export interface RouteOptions {
  /** Answered without basic auth: for the probes, which carry no credentials, and for ingest, which has its token. */
  open?: boolean;
}

interface Route {
  method: string;
  pattern: RegExp;
  handler: RouteHandler;
  open: boolean;
}

/** Slow or never-ending requests must not hold a connection forever (see the ingest route). */
export const REQUEST_TIMEOUT_MS = 30_000;
export const HEADERS_TIMEOUT_MS = 10_000;
/**
 * How often Node looks for connections past headersTimeout or requestTimeout. Its default, 30 s,
 * let a client that trickles its headers hold a connection three times the 10 s it is allowed.
 */
export const CONNECTIONS_CHECK_INTERVAL_MS = 1_000;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, error: string, extra: object = {}): void {
  sendJson(res, status, { error, ...extra });
}

/**
 * The path (still percent-encoded, `.` and `..` segments as sent, so mirrors named `.` or `..`
 * stay reachable) and the query of a request target; undefined when it is neither origin form nor
 * absolute form (`*`, or no target at all).
 */
export function parseTarget(target: string): { path: string; query: string } | undefined {
  let rest = target;
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (absolute) rest = target.slice(absolute[0].length);
  if (absolute && !rest.startsWith('/')) rest = `/${rest}`;
  if (!rest.startsWith('/')) return undefined;
  const question = rest.indexOf('?');
  return question < 0 ? { path: rest, query: '' } : { path: rest.slice(0, question), query: rest.slice(question + 1) };
}

/** How a `client_auth_type` is told to Node; the checks Node has no option for are in `refusePeer`. */
function clientAuthOptions(tls: TlsSettings): { requestCert: boolean; rejectUnauthorized: boolean } {
  return {
    requestCert: tls.clientAuth !== 'NoClientCert',
    rejectUnauthorized: tls.clientAuth === 'RequireAndVerifyClientCert',
  };
}

/** Why a client's certificate is refused after the handshake, or undefined when it is not. */
function refusePeer(tls: TlsSettings, socket: TLSSocket): string | undefined {
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) {
    if (tls.clientAuth === 'RequireAnyClientCert') return 'no client certificate';
    return tls.allowedSans !== undefined && tls.clientAuth !== 'NoClientCert' && tls.clientAuth !== 'RequestClientCert'
      ? 'no client certificate to match client_allowed_sans'
      : undefined;
  }
  if (tls.clientAuth === 'VerifyClientCertIfGiven' && !socket.authorized) return `client certificate not trusted: ${String(socket.authorizationError)}`;
  if (tls.allowedSans !== undefined) {
    // "DNS:a, IP Address:127.0.0.1, email:x@y, URI:spiffe://…" → the values, as Go lists them.
    const sans = (peer.subjectAltName ?? '').split(', ').map((entry) => entry.slice(entry.indexOf(':') + 1));
    if (!sans.some((san) => tls.allowedSans?.includes(san))) return 'no allowed SAN in the client certificate';
  }
  return undefined;
}

export interface HttpServerOptions {
  /** The web configuration file as read at start; undefined: plain HTTP, no basic auth. */
  webConfig?: WebConfig;
}

export class HttpServer {
  private readonly routes: Route[] = [];
  private server: Server | HttpsServer | undefined;
  private readonly log: Logger;
  private web: WebConfig | undefined;
  private readonly auth: BasicAuth | undefined;
  private watch: WebConfigWatch | undefined;

  constructor(logger: Logger, options: HttpServerOptions = {}) {
    this.log = logger.child({ component: 'http' });
    this.web = options.webConfig;
    this.auth = this.web === undefined ? undefined : new BasicAuth(this.web.users);
  }

  /** `pattern` is matched against the path; capture groups become `params` (still URL-encoded). */
  route(method: string, pattern: RegExp, handler: RouteHandler, options: RouteOptions = {}): this {
    this.routes.push({ method, pattern, handler, open: options.open === true });
    return this;
  }

  private find(path: string, method: string | undefined): { route: Route | undefined; match: string[]; allow: string[] } {
    const allow = new Set<string>();
    for (const route of this.routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      if (route.method === method || (route.method === 'GET' && method === 'HEAD')) return { route, match: match.slice(1), allow: [] };
      allow.add(route.method);
      if (route.method === 'GET') allow.add('HEAD');
    }
    return { route: undefined, match: [], allow: [...allow] };
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for (const [name, value] of Object.entries(this.web?.headers ?? {})) res.setHeader(name, value);
    const target = parseTarget(req.url ?? '');
    if (target === undefined) {
      sendError(res, 400, 'the request target must be a path (/…) or an absolute URL (http://host/…)');
      return;
    }
    const { route, match, allow } = this.find(target.path, req.method);
    if (route?.open !== true && this.auth?.enabled === true) {
      const result = await this.auth.check(req.headers.authorization);
      if (result === 'busy') {
        sendError(res, 429, 'too many authentication attempts at once; try again', {});
        return;
      }
      if (result === 'denied') {
        sendJson(res, 401, { error: 'unauthorized: this server asks for basic auth' }, { 'www-authenticate': 'Basic realm="mirrorstate", charset="UTF-8"' });
        return;
      }
    }
    if (route === undefined) {
      if (allow.length > 0) sendJson(res, 405, { error: `method ${req.method} not allowed on ${target.path}` }, { allow: allow.join(', ') });
      else sendError(res, 404, `no route ${target.path}`);
      return;
    }
    const url = new URL('http://localhost/');
    url.search = target.query;
    await route.handler(req, res, match, url);
  }

  async start(port: number, host: string): Promise<AddressInfo> {
    const listener = (req: IncomingMessage, res: ServerResponse) => {
      this.dispatch(req, res).catch((err: unknown) => {
        this.log.error({ err, url: req.url }, 'request failed');
        if (!res.headersSent) sendError(res, 500, 'internal error; see the daemon log');
        else res.destroy();
      });
    };
    const options: ServerOptions = {
      requestTimeout: REQUEST_TIMEOUT_MS,
      headersTimeout: HEADERS_TIMEOUT_MS,
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS,
    };
    const tls = this.web?.tls;
    const server = tls === undefined ? createServer(options, listener) : this.createTlsServer(tls, options, listener);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    this.log.info(
      { host: address.address, port: address.port, tls: tls !== undefined, basicAuth: this.auth?.enabled === true },
      'http listening',
    );
    if (this.web !== undefined) {
      this.watch = new WebConfigWatch({ current: this.web, apply: (next) => this.apply(next), logger: this.log });
      this.watch.start();
    }
    return address;
  }

  private createTlsServer(tls: TlsSettings, options: ServerOptions, listener: (req: IncomingMessage, res: ServerResponse) => void): HttpsServer {
    const server = createHttpsServer({ ...options, ...tls.context, ...clientAuthOptions(tls) }, listener);
    // Ahead of the HTTP layer's own listener: a refused client is cut before a byte is read.
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      const current = this.web?.tls;
      const reason = current === undefined ? undefined : refusePeer(current, socket);
      if (reason === undefined) return;
      this.log.debug({ remote: socket.remoteAddress, reason }, 'TLS client refused');
      socket.destroy();
    });
    return server;
  }

  /** Puts a reread web configuration in force, or throws a WebConfigError saying why it cannot. */
  private apply(next: WebConfig): void {
    const server = this.server;
    if ((next.tls === undefined) !== (this.web?.tls === undefined)) {
      throw new WebConfigError(next.path, 'tls_server_config', 'turning TLS on or off takes a restart of the daemon');
    }
    if (next.tls !== undefined && server !== undefined && 'setSecureContext' in server) {
      server.setSecureContext(next.tls.context);
      // Node reads these two per connection; they are not part of the secure context.
      Object.assign(server, clientAuthOptions(next.tls));
    }
    this.auth?.setUsers(next.users);
    this.web = next;
  }

  /** Stops accepting connections and closes idle ones. Idempotent. */
  async stop(): Promise<void> {
    this.watch?.stop();
    this.watch = undefined;
    await this.auth?.stop();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeIdleConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
