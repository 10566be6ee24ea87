import pg from 'pg';
import type { Logger } from '../log.js';
import { connectionConfig, DEFAULT_SESSION_LIMITS, type SessionLimits } from './connection.js';
import type { Outage } from './outage.js';

// timestamptz columns are read as text where precision matters (see catalog/); everywhere else a
// bigint count fits a JavaScript number, so parse int8 as a number instead of pg's default string.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export function createPool(
  url: string, max: number, applicationName: string, logger: Logger, outage?: Outage, limits: SessionLimits = DEFAULT_SESSION_LIMITS,
): pg.Pool {
  const pool = new pg.Pool({ ...connectionConfig(url, limits), max, application_name: applicationName, connectionTimeoutMillis: 10_000 });
  // An idle client losing its connection (server restart) must not crash the process: pg emits
  // it here, and the next checkout reconnects. A restart drops every idle client at once: the
  // outage logs that once.
  pool.on('error', (err) => {
    // A pool being closed (pool.end() resolves before its sockets are gone) may still hear the
    // server end them, e.g. a one-shot command stopping the embedded server right after: no failure.
    if (pool.ending) return;
    if (!outage?.report(err)) logger.warn({ err }, 'idle catalog connection failed');
  });
  return pool;
}

/** Runs `fn` in one transaction on a client of its own; rolls back on any throw. */
export async function inTransaction<T>(
  pool: pg.Pool,
  begin: string,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
