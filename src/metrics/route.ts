/** GET /metrics. */
import type { Registry } from 'prom-client';
import type { HttpServer } from '../http/server.js';

export interface MetricsRouteOptions {
  registry: Registry;
}

export function registerMetricsRoute(server: HttpServer, options: MetricsRouteOptions): void {
  server.route('GET', /^\/metrics$/, async (_req, res) => {
    const text = await options.registry.metrics();
    res.writeHead(200, { 'content-type': options.registry.contentType });
    res.end(text);
  });
}
