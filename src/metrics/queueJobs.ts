/**
 * mirrorstate_queue_jobs: jobs per pg-boss state of the updates queue and its dead-letter queue,
 * counted every QUEUE_JOBS_INTERVAL_MS in the background so a scrape never waits on the job table.
 *
 * pg-boss 12 keeps jobs in `<schema>.job`, a table partitioned by queue name (a queue created
 * with `partition: true` gets a partition of its own, the rest share the default one); selecting
 * from the parent reaches every partition, and `name` prunes to the right ones. Queue-level cached
 * counts (getQueueStats) only split queued/active/failed, not all six states.
 */
import type { Gauge } from 'prom-client';
import { quoteIdent } from '../catalog/sql.js';
import type { Logger } from '../log.js';
import { JOB_STATES, REPORTED_QUEUES } from './daemon.js';
import type { Outage } from '../db/outage.js';

export const QUEUE_JOBS_INTERVAL_MS = 5_000;

export interface QueueDb {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  executeSql(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

/** One statement: job counts by queue and state, for the reported queues. */
export async function countQueueJobs(db: QueueDb, bossSchema: string): Promise<{ queue: string; state: string; jobs: number }[]> {
  const { rows } = await db.executeSql(
    `select name as queue, state::text as state, count(*)::int as jobs
       from ${quoteIdent(bossSchema)}.job
      where name = any($1::text[])
      group by 1, 2`,
    [[...REPORTED_QUEUES]],
  );
  return rows as { queue: string; state: string; jobs: number }[];
}

export interface QueueJobsPollerOptions {
  db: QueueDb;
  bossSchema: string;
  gauge: Gauge<'queue' | 'state'>;
  logger: Logger;
  intervalMs?: number;
  /** The queue database's outages: a count failing for one is not logged on its own. */
  outage?: Outage;
}

export class QueueJobsPoller {
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private loggedFailure = false;
  private stopped = true;
  private failing = false;
  private readonly log: Logger;

  constructor(private readonly options: QueueJobsPollerOptions) {
    this.log = options.logger.child({ component: 'queue-jobs' });
  }

  /** Counts once right away (so the first scrape has numbers), then every interval. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    await this.poll();
  }

  /** Idempotent; waits for a count in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  private async poll(): Promise<void> {
    this.polling = this.count();
    await this.polling;
    this.polling = undefined;
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.poll(), this.options.intervalMs ?? QUEUE_JOBS_INTERVAL_MS);
    this.timer.unref();
  }

  private async count(): Promise<void> {
    const { db, bossSchema, gauge } = this.options;
    try {
      const rows = await countQueueJobs(db, bossSchema);
      const counts = new Map(rows.map((r) => [`${r.queue}\0${r.state}`, r.jobs]));
      for (const queue of REPORTED_QUEUES) {
        for (const state of JOB_STATES) gauge.set({ queue, state }, counts.get(`${queue}\0${state}`) ?? 0);
      }
      if (this.failing && this.loggedFailure) this.log.info('counting queue jobs works again');
      this.failing = false;
    } catch (err) {
      // The last counts stay: they are the best we know, and catalog_up/readyz tell of the outage.
      if (!this.failing) {
        this.loggedFailure = !this.options.outage?.report(err);
        if (this.loggedFailure) this.log.warn({ err }, 'counting queue jobs failed; mirrorstate_queue_jobs keeps its last values');
      }
      this.failing = true;
    }
  }
}
