/**
 * mirrorstate_queue_jobs: jobs per pg-boss state of the updates queue and its dead-letter queue,
 * read every QUEUE_JOBS_INTERVAL_MS in the background so a scrape never waits on the job table.
 *
 * Its cost must not grow with the backlog. pg-boss 12 keeps each queue's counts in its `queue`
 * table (queued = created + retry, active, failed, total), recomputed by its own monitor every
 * monitor interval (boss.ts) whether anyone reads them or not: reading them is one row per queue.
 * They do not split all six states, so while a queue is small (at most EXACT_COUNT_MAX_JOBS jobs by
 * that cache) its jobs are counted exactly by state, a read bounded by the same limit; above it the
 * cache's counts are served, `retry` counted in `created` and `cancelled` in `completed` (sums such
 * as the backlog alert's created + retry stay exact up to the cache's age).
 *
 * pg-boss 12 keeps jobs in `<schema>.job`, a table partitioned by queue name (a queue created
 * with `partition: true` gets a partition of its own, the rest share the default one); selecting
 * from the parent reaches every partition, and `name` prunes to the right ones.
 */
import type { Gauge } from 'prom-client';
import { quoteIdent } from '../catalog/sql.js';
import type { Outage } from '../db/outage.js';
import type { Logger } from '../log.js';
import { DEAD_LETTER_QUEUE, UPDATES_QUEUE } from './boss.js';

/** pg-boss 12's job states, every one reported (0 when empty) so queries never meet a gap. */
export const JOB_STATES = ['created', 'retry', 'active', 'completed', 'cancelled', 'failed'] as const;
/** The queues the gauge reports. */
export const REPORTED_QUEUES = [UPDATES_QUEUE, DEAD_LETTER_QUEUE] as const;

export const QUEUE_JOBS_INTERVAL_MS = 5_000;
/** Above this many jobs in a queue (by pg-boss's cache), its counts come from the cache alone. */
export const EXACT_COUNT_MAX_JOBS = 50_000;

export interface QueueJobCount {
  queue: string;
  state: string;
  jobs: number;
}

export interface QueueDb {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  executeSql(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

/** Job counts by state of `queues`, counted row by row: exact, and as dear as the queues are long. */
export async function countQueueJobs(db: QueueDb, bossSchema: string, queues: readonly string[] = REPORTED_QUEUES): Promise<QueueJobCount[]> {
  if (queues.length === 0) return [];
  const { rows } = await db.executeSql(
    `select name as queue, state::text as state, count(*)::int as jobs
       from ${quoteIdent(bossSchema)}.job
      where name = any($1::text[])
      group by 1, 2`,
    [[...queues]],
  );
  return rows as QueueJobCount[];
}

interface CachedQueueCounts {
  queue: string;
  queued: number;
  active: number;
  failed: number;
  total: number;
}

/** pg-boss's cached counts of the reported queues (its `queue` table, kept by its monitor). */
export async function readCachedQueueCounts(db: QueueDb, bossSchema: string): Promise<CachedQueueCounts[]> {
  const { rows } = await db.executeSql(
    `select name as queue, queued_count as queued, active_count as active, failed_count as failed, total_count as total
       from ${quoteIdent(bossSchema)}.queue
      where name = any($1::text[])`,
    [[...REPORTED_QUEUES]],
  );
  return rows as CachedQueueCounts[];
}

/** The cache's counts as the six states: retry within created, cancelled within completed. */
function fromCache(c: CachedQueueCounts): QueueJobCount[] {
  const completed = Math.max(c.total - c.queued - c.active - c.failed, 0);
  return [
    { queue: c.queue, state: 'created', jobs: c.queued },
    { queue: c.queue, state: 'active', jobs: c.active },
    { queue: c.queue, state: 'failed', jobs: c.failed },
    { queue: c.queue, state: 'completed', jobs: completed },
  ];
}

/**
 * The reported queues' jobs by state at a cost that does not grow with the backlog: exact for a
 * queue of at most `exactMax` jobs (by pg-boss's cache), the cache's counts above (see the top).
 */
export async function readQueueJobs(db: QueueDb, bossSchema: string, exactMax = EXACT_COUNT_MAX_JOBS): Promise<QueueJobCount[]> {
  const cached = await readCachedQueueCounts(db, bossSchema);
  const large = cached.filter((c) => c.total > exactMax);
  const small = REPORTED_QUEUES.filter((queue) => !large.some((c) => c.queue === queue));
  return [...(await countQueueJobs(db, bossSchema, small)), ...large.flatMap(fromCache)];
}

export interface QueueJobsPollerOptions {
  db: QueueDb;
  bossSchema: string;
  gauge: Gauge<'queue' | 'state'>;
  logger: Logger;
  intervalMs?: number;
  /** EXACT_COUNT_MAX_JOBS, for tests. */
  exactMax?: number;
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
    // Every series exists from the start, at 0 until the first count.
    for (const queue of REPORTED_QUEUES) for (const state of JOB_STATES) options.gauge.set({ queue, state }, 0);
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
      const rows = await readQueueJobs(db, bossSchema, this.options.exactMax);
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
