/** GET /healthz (the process runs) and GET /readyz (catalog reachable, migrations current, consumer running). */
import type { HttpServer } from './server.js';
import { sendJson } from './server.js';

export interface Readiness {
  /** Resolves to the reasons the daemon is not ready; empty when it is. */
  check(): Promise<string[]>;
}

export function registerHealthRoutes(server: HttpServer, readiness: Readiness): void {
  // Open to all: probes carry no credentials, and neither answer says anything secret.
  server.route('GET', /^\/healthz$/, (_req, res) => sendJson(res, 200, { status: 'ok' }), { open: true });
  server.route('GET', /^\/readyz$/, async (_req, res) => {
    const reasons = await readiness.check();
    if (reasons.length === 0) sendJson(res, 200, { status: 'ready' });
    else sendJson(res, 503, { status: 'not ready', error: reasons.join('; '), reasons });
  }, { open: true });
}
