/**
 * Runs retention (catalog/trim.ts) on a schedule, on one replica at a time.
 *
 * Every replica, every interval, sends a job to the `mirrorstate-trim` queue throttled to one job
 * per interval slot (`singletonKey` + `singletonSeconds`: pg-boss's unique index on
 * (name, singleton_on, singleton_key) drops the other replicas' sends for the same slot), and works
 * the queue with one local worker. The queue's 'singleton' policy lets only one job be active at a
 * time across replicas, so a slow trim never overlaps the next. pg-boss cron (`schedule()`) was not
 * used: it has minute granularity, and MIRRORSTATE_TRIM_INTERVAL may be seconds.
 * trim.ts's advisory lock is the second line: a `mirrorstate trim` run by hand queues behind it.
 */
import type { PgBoss } from 'pg-boss';
import { trim, type RetentionSettings } from '../catalog/trim.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Outage } from '../db/outage.js';
import type { DaemonMetrics } from '../metrics/daemon.js';
import { TRIM_QUEUE } from './boss.js';

export const TRIM_SINGLETON_KEY = 'trim';

export interface TrimmerOptions extends RetentionSettings {
  boss: PgBoss;
  pool: Pool;
  schema: string;
  trimIntervalMs: number;
  logger: Logger;
  metrics: Pick<DaemonMetrics, 'journalTrimmed'>;
  /** The catalog's outages: a trim failing for one is not logged on its own. */
  outage?: Outage;
}

export class Trimmer {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private workId: string | undefined;
  private stopping: Promise<void> | undefined;
  /** Aborted by stop(): a run in progress ends after its current chunk instead of finishing. */
  private readonly abort = new AbortController();

  constructor(private readonly options: TrimmerOptions) {
    this.log = options.logger.child({ component: 'trimmer' });
  }

  private get enabled(): boolean {
    const o = this.options;
    return o.journalMaxAgeMs > 0 || o.journalMaxPerMirror > 0 || o.transitionsMaxAgeMs > 0;
  }

  async start(): Promise<void> {
    if (this.workId !== undefined || this.stopping) return;
    if (!this.enabled) {
      this.log.info('retention is off: every limit is 0');
      return;
    }
    const { boss, trimIntervalMs } = this.options;
    const intervalSeconds = Math.max(1, Math.round(trimIntervalMs / 1000));
    // Poll about twice per interval (pg-boss allows 0.5 s at the least): a job waits at most that.
    const pollingIntervalSeconds = Math.min(30, Math.max(0.5, intervalSeconds / 2));
    this.workId = await boss.work(TRIM_QUEUE, { batchSize: 1, localConcurrency: 1, pollingIntervalSeconds }, () => this.runOnce());
    const send = () => {
      boss.sendThrottled(TRIM_QUEUE, {}, null, intervalSeconds, TRIM_SINGLETON_KEY).catch((err: unknown) => {
        if (!this.options.outage?.report(err)) this.log.warn({ err }, 'could not schedule a trim; will try again next interval');
      });
    };
    send();
    this.timer = setInterval(send, trimIntervalMs);
    this.timer.unref();
    this.log.info({ intervalSeconds }, 'trimmer started');
  }

  /** Runs retention once; throws (failing the job) when a chunk fails. */
  async runOnce(): Promise<void> {
    const { pool, schema, journalMaxAgeMs, journalMaxPerMirror, transitionsMaxAgeMs, metrics } = this.options;
    const started = performance.now();
    try {
      const result = await trim(pool, schema, {
        journalMaxAgeMs, journalMaxPerMirror, transitionsMaxAgeMs,
        onJournalTrimmed: (rows) => metrics.journalTrimmed.inc(rows),
        signal: this.abort.signal,
      });
      this.log.info({ ...result, durationMs: Math.round(performance.now() - started) }, 'trim done');
    } catch (err) {
      if (!this.options.outage?.report(err)) {
        this.log.error({ err, durationMs: Math.round(performance.now() - started) }, 'trim failed; committed chunks stay');
      }
      throw err;
    }
  }

  /** Idempotent: stops scheduling and waits for a trim in progress to end after its current chunk. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.abort.abort();
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      if (this.workId !== undefined) await this.options.boss.offWork(TRIM_QUEUE, { id: this.workId, wait: true });
      this.workId = undefined;
    })();
    return this.stopping;
  }
}
