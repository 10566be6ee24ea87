/**
 * Leadership among replicas: the one replica that holds a session-level advisory lock in
 * mirrorstate's own catalog database polls PeerDB (nothing is locked in PeerDB's database). The lock
 * lives exactly as long as the connection that took it: when the holder dies (SIGKILL included) the
 * server ends its session and frees the lock, and the next replica to try takes it. A holder that
 * loses its connection has lost the lock with it, so it must stop polling at once (the poller
 * watches `lost`).
 */
import pg from 'pg';
import type { Logger } from '../../log.js';
import { connectionConfig, DEFAULT_SESSION_LIMITS, type SessionLimits } from '../../db/connection.js';

/** Stops a hung catalog from hanging the poller: the server may be gone without a word (a cut network). */
const QUERY_TIMEOUT_MS = 10_000;

export interface Leadership {
  /** The connection that holds the lock; the publish transaction runs on it too. */
  client: pg.Client;
  /** Resolves when the connection (and with it the lock) is gone. */
  lost: Promise<void>;
  isLost(): boolean;
  release(): Promise<void>;
}

/** The lock key: one poller per catalog schema (two deployments sharing a database stay apart). */
export function leaderLockSql(): string {
  return `select pg_try_advisory_lock(hashtextextended('mirrorstate.peerdb:' || $1::text, 0)) as locked`;
}

/** Tries once; null when another replica leads. Throws when the catalog cannot be reached. */
export async function tryLead(
  catalogUrl: string, schema: string, applicationName: string, logger: Logger, limits: SessionLimits = DEFAULT_SESSION_LIMITS,
): Promise<Leadership | null> {
  const client = new pg.Client({
    ...connectionConfig(catalogUrl, limits),
    application_name: applicationName,
    keepAlive: true,
    query_timeout: QUERY_TIMEOUT_MS,
    connectionTimeoutMillis: QUERY_TIMEOUT_MS,
  });
  let lost = false;
  let markLost: () => void = () => undefined;
  const lostPromise = new Promise<void>((resolve) => (markLost = resolve));
  const onGone = (err?: Error) => {
    if (lost) return;
    lost = true;
    if (err) logger.warn({ err: { message: err.message } }, 'PeerDB leader connection lost');
    markLost();
  };
  client.on('error', onGone);
  client.on('end', () => onGone());
  try {
    await client.connect();
    const { rows } = await client.query<{ locked: boolean }>(leaderLockSql(), [schema]);
    if (!rows[0]?.locked) {
      lost = true;
      await client.end().catch(() => undefined);
      return null;
    }
  } catch (err) {
    lost = true;
    await client.end().catch(() => undefined);
    throw err;
  }
  return {
    client,
    lost: lostPromise,
    isLost: () => lost,
    async release() {
      if (lost) return;
      lost = true;
      // Ending the session frees the lock; no unlock statement needed (or trusted).
      await client.end().catch(() => undefined);
    },
  };
}
