/**
 * One database's outages, as the daemon's parts meet them. A restart of PostgreSQL under load
 * makes every part fail at once and again at each retry — pg-boss's workers, supervisor and
 * monitor, the pools' idle clients, the scrape path, the queue-jobs poller — and logging each would
 * be a flood. Instead each part reports what it meets here: a connection loss (sqlstate.ts
 * decides by SQLSTATE) starts an outage, logged once as a warning; further reports are debug. A
 * probe with capped exponential backoff then finds the server back and logs that once, with how
 * long it was gone. Errors that are not connection losses are not ours: report() says so and the
 * part logs them as before.
 */
import { isClientSideError, isConnectionLoss } from './sqlstate.js';
import type { Logger } from '../log.js';

export const PROBE_FIRST_DELAY_MS = 100;
export const PROBE_MAX_DELAY_MS = 2_000;

export interface OutageOptions {
  /** `catalog and queue database`, `queue database`, … : how the log names it. */
  name: string;
  /** Resolves when the database answers a trivial query. */
  probe: () => Promise<unknown>;
  logger: Logger;
}

export class Outage {
  private since: number | undefined;
  private reports = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly options: OutageOptions) {
    this.log = options.logger.child({ component: 'database', database: options.name });
  }

  get down(): boolean {
    return this.since !== undefined;
  }

  /** Takes a connection loss (true) or declines anything else (false: the caller logs it). */
  report(err: unknown): boolean {
    // Stopped: the daemon is shutting down, and a server it stops itself (the embedded one) ends
    // the connections still open. That is no outage.
    if (this.stopped) return isConnectionLoss(err) || isClientSideError(err);
    // pg-boss emits copies of its errors ({...err}): a "connection terminated" loses its type on the
    // way, so while the database is known down, any error the server did not send is taken as one.
    if (!isConnectionLoss(err) && !(this.down && isClientSideError(err))) return false;
    this.reports++;
    if (this.since !== undefined) {
      this.log.debug({ err: brief(err) }, 'still unreachable');
      return true;
    }
    this.since = Date.now();
    this.reports = 1;
    this.log.warn(
      { err: brief(err) },
      `${this.options.name} unreachable: work pauses and resumes by itself when it is back; retrying with backoff`,
    );
    this.schedule(PROBE_FIRST_DELAY_MS);
    return true;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.options.probe().then(
        () => this.back(),
        () => this.schedule(Math.min(delayMs * 2, PROBE_MAX_DELAY_MS)),
      );
    }, delayMs);
    this.timer.unref();
  }

  private back(): void {
    if (this.since === undefined) return;
    this.log.info({ downMs: Date.now() - this.since, failuresSeen: this.reports }, `${this.options.name} reachable again`);
    this.since = undefined;
  }

  /** Idempotent. Connection losses reported afterwards are taken without a word (see report). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

/** pg's errors carry the whole client (connection parameters included): log only what helps. */
function brief(err: unknown): { message: string; code?: string } {
  const e = err as { message?: unknown; code?: unknown };
  return { message: String(e?.message ?? err), ...(typeof e?.code === 'string' ? { code: e.code } : {}) };
}
