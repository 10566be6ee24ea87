/** The connections /metrics reads the catalog on. */
import pg from 'pg';
import { connectionConfig, DEFAULT_SESSION_LIMITS, type SessionLimits } from '../db/connection.js';
import type { Outage } from '../db/outage.js';
import type { Logger } from '../log.js';

/** Server-side bound on one catalog read; a scrape gives up waiting much earlier (its own timeout). */
export const SNAPSHOT_STATEMENT_TIMEOUT_MS = 30_000;
export const SNAPSHOT_CONNECT_TIMEOUT_MS = 5_000;

/**
 * A pool of its own: scrapes never queue behind catalog writes for a connection, and the
 * statement timeout bounds a read server-side. Its connections stay open between scrapes
 * (node-pg closes idle ones after 10 s by default): Prometheus scrapes every 15 s to 1 min, and a
 * scrape that had to connect first would pay the connection and the feed statement's preparation
 * every time.
 */
export function createSnapshotPool(url: string, logger: Logger, outage?: Outage, limits: SessionLimits = DEFAULT_SESSION_LIMITS): pg.Pool {
  const pool = new pg.Pool({
    ...connectionConfig(url, limits),
    max: 2,
    idleTimeoutMillis: 0,
    application_name: 'mirrorstate-metrics',
    connectionTimeoutMillis: SNAPSHOT_CONNECT_TIMEOUT_MS,
    statement_timeout: SNAPSHOT_STATEMENT_TIMEOUT_MS,
  });
  pool.on('error', (err) => {
    if (!outage?.report(err)) logger.warn({ err }, 'idle metrics connection failed');
  });
  return pool;
}
