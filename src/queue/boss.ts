/**
 * pg-boss setup: the instance options and the two queues.
 *
 * Crash recovery: in the shared database a batch claims its jobs inside its own transaction
 * (claimer.ts), so a dead daemon's jobs are claimable again the moment the server drops its
 * connection. With a separate queue database pg-boss's worker claims them, and a daemon killed
 * mid-batch leaves them `active`: with a queue heartbeat of 10 s (pg-boss's minimum) a live worker
 * refreshes its claim every 3 s while a batch runs, and a supervisor pass every 2 s fails and
 * retries claims whose heartbeat is older than that. The jobs of a dead daemon therefore come back
 * once its last heartbeat is 10 s old, within one pass after that, while a long but healthy batch
 * is never taken away. `expireInSeconds` stays an outer bound on one batch's handler.
 *
 * That pass is pg-boss's monitor, so monitorIntervalSeconds is the same 2 s; it also recounts the
 * cached counts mirrorstate_queue_jobs serves past 50,000 jobs, which keeps them a few seconds old
 * (docs/metrics.md). It is not cheap at a backlog: the recount and the expiry and heartbeat checks
 * each read the whole job table (no index covers active jobs), once per pass for the whole cluster,
 * and pg-boss waits the interval after a pass, so a long pass also spaces the passes out
 * (docs/performance.md, Figures behind the design: the queue gauge).
 */
import { PgBoss } from 'pg-boss';
import type { Logger } from '../log.js';
import { connectionConfig, DEFAULT_SESSION_LIMITS, type SessionLimits } from '../db/connection.js';
import type { Outage } from '../db/outage.js';

export const UPDATES_QUEUE = 'mirrorstate-updates';
export const DEAD_LETTER_QUEUE = 'mirrorstate-updates-dlq';
export const TRIM_QUEUE = 'mirrorstate-trim';

export const HEARTBEAT_SECONDS = 10;
export const HEARTBEAT_REFRESH_SECONDS = 3;
export const SUPERVISE_INTERVAL_SECONDS = 2;
export const BATCH_EXPIRE_SECONDS = 120;

export interface BossOptions {
  connectionString: string;
  schema: string;
  max: number;
  logger: Logger;
  /** Workers run here: LISTEN/NOTIFY and the supervisor. A producer-only instance needs neither. */
  worker: boolean;
  /** Connection losses go here (logged once per outage) instead of one error line each. */
  outage?: Outage;
  /** Session limits of the queue's connections (default: the settings' defaults). */
  limits?: SessionLimits;
  /**
   * Install or migrate pg-boss's schema at start (default). Off for the one-shot commands but
   * `migrate`: like a producer, they find the queue set up or fail saying to run `migrate`.
   */
  install?: boolean;
}

export function createBoss(options: BossOptions): PgBoss {
  const boss = new PgBoss({
    ...connectionConfig(options.connectionString, options.limits ?? DEFAULT_SESSION_LIMITS),
    schema: options.schema,
    max: options.max,
    application_name: 'mirrorstate',
    useListenNotify: options.worker,
    supervise: options.worker,
    schedule: options.worker,
    ...(options.install === false ? { migrate: false, createSchema: false } : {}),
    superviseIntervalSeconds: SUPERVISE_INTERVAL_SECONDS,
    monitorIntervalSeconds: SUPERVISE_INTERVAL_SECONDS,
  });
  const log = options.logger;
  boss.on('error', (err: Error & { code?: string }) => {
    // Only what an operator needs: pg's errors carry the whole client (connection parameters
    // included) as enumerable properties.
    const brief = { message: err.message, code: err.code, stack: err.stack };
    // A restart fails each worker's fetch, the supervisor and the monitor, again at every retry.
    if (options.outage?.report(err)) return;
    log.error({ err: brief }, 'pg-boss error');
  });
  boss.on('warning', warningLogger(log));
  return boss;
}

/** How often one kind of pg-boss warning is logged while it repeats. */
export const WARNING_REPEAT_MS = 5 * 60_000;

/**
 * pg-boss repeats a standing warning at every monitor pass (a queue backlog: every few seconds for
 * as long as it lasts). A kind of warning (its message with the numbers left out) is logged once a
 * WARNING_REPEAT_MS, saying how many were held back since; the gauges and alerts show it meanwhile.
 */
export function warningLogger(log: Logger, now: () => number = Date.now): (warning: { message?: unknown }) => void {
  const kinds = new Map<string, { loggedAt: number; heldBack: number }>();
  return (warning) => {
    const kind = String(warning.message).replace(/\d+/g, '#');
    const seen = kinds.get(kind);
    const at = now();
    if (seen && at - seen.loggedAt < WARNING_REPEAT_MS) {
      seen.heldBack++;
      return;
    }
    log.warn({ warning, ...(seen ? { heldBack: seen.heldBack } : {}) }, 'pg-boss warning');
    kinds.set(kind, { loggedAt: at, heldBack: 0 });
  };
}

/** Creates the queues, or brings an existing queue's options up to date. Idempotent. */
export async function ensureQueues(boss: PgBoss): Promise<void> {
  await boss.createQueue(DEAD_LETTER_QUEUE, { notify: false, retentionSeconds: 14 * 86_400, deleteAfterSeconds: 7 * 86_400 });
  const updates = {
    notify: true,
    expireInSeconds: BATCH_EXPIRE_SECONDS,
    heartbeatSeconds: HEARTBEAT_SECONDS,
    // A failed batch is a transient catalog problem (bad updates never fail a batch: they are
    // dead-lettered), so retry on a backoff for a long while rather than give up on a producer's data.
    retryLimit: 1000,
    retryDelay: 1,
    retryBackoff: true,
    retryDelayMax: 60,
    deleteAfterSeconds: 3600,
  };
  await boss.createQueue(UPDATES_QUEUE, updates);
  await boss.updateQueue(UPDATES_QUEUE, updates);
  await boss.createQueue(TRIM_QUEUE, { policy: 'singleton', expireInSeconds: 600, retryLimit: 0, deleteAfterSeconds: 3600 });
}
