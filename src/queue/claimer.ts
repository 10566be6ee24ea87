/**
 * The shared-database consumer's loop: a batch claims its jobs by deleting them, inside the same
 * transaction that writes them to the catalog.
 *
 * Why not pg-boss's worker: its fetch marks each job `active` (an UPDATE of the row and its
 * indexes), and the settle after the handler is a second write of every job. When the queue lives
 * in the catalog database neither is needed: `delete … for update skip locked … returning` in the
 * batch's transaction claims the jobs (other workers and replicas skip the locked rows) and settles
 * them in the one commit that writes the catalog, several times cheaper than either pg-boss way
 * (docs/performance.md, Figures behind the design). Per batch that is 5 round trips (begin,
 * claim, lock, write, commit) in place of 7.
 *
 * Crash safety is the transaction's: a daemon that dies mid-batch leaves nothing behind but an
 * aborted transaction, so its jobs are claimable again at once (no heartbeat to wait out), and one
 * that hangs is ended by the pool's idle_in_transaction_session_timeout (boss.ts).
 *
 * Failures: a batch the catalog refuses for its data (db/sqlstate.ts isPoison) is claimed again at
 * once and written update by update under savepoints (Consumer.writeIsolated). Anything else rolls
 * back and the loop backs off (capped at 10 s); the jobs were never marked, so they simply wait in
 * the queue, and pg-boss's retry limit, which counts failures of its own fetches, never gives up on
 * them.
 *
 * Wake-ups: pg-boss NOTIFYs its channel on every insert into a notify queue; this loop listens on
 * the same channel through pg-boss's own listener connection (reconnects by itself, and wakes the
 * loop after a reconnect to pick up what was missed). A 1 s poll is the backstop.
 *
 * Jobs in flight are therefore `created` rows locked by a transaction, never `active`: the queue
 * gauge shows them as queued until their batch commits.
 */
import { createHash } from 'node:crypto';
import type { PgBoss } from 'pg-boss';
import { type Executor, quoteIdent } from '../catalog/sql.js';
import { isPoison } from '../db/sqlstate.js';
import type { Logger } from '../log.js';
import type { Outage } from '../db/outage.js';
import { MAX_UPDATES_PER_MESSAGE } from '../update.js';
import { UPDATES_QUEUE } from './boss.js';

/** What a batch needs of a job. pg-boss's `Job` fits it too (the separate-queue path). */
export interface QueuedJob {
  id: string;
  data: unknown;
  retryCount: number;
}

export interface ClaimerOptions {
  boss: PgBoss;
  /** pg-boss's schema (MIRRORSTATE_BOSS_SCHEMA). */
  bossSchema: string;
  batchSize: number;
  concurrency: number;
  /** Writes one claimed batch through `db`; `isolate` asks for the update-by-update path. */
  write: (jobs: QueuedJob[], db: Executor, isolate: boolean) => Promise<unknown>;
  /** A claimed batch rolled back (its write or its commit failed); its jobs stay queued. */
  onBatchFailed?: (err: unknown) => void;
  logger: Logger;
  outage?: Outage;
  pollIntervalMs?: number;
}

export const POLL_INTERVAL_MS = 1_000;
export const BACKOFF_FIRST_MS = 250;
export const BACKOFF_MAX_MS = 10_000;

/** pg-boss's notify channel for `schema` (its plans.notifyChannelSql, computed here instead of asked). */
export function notifyChannel(schema: string): string {
  const normalized = /^"[a-z_][a-z0-9_]*"$/.test(schema) ? schema.slice(1, -1) : schema;
  return `pgboss_${createHash('sha224').update(normalized).digest('hex').slice(0, 24)}`;
}

/** A claim aims at about this many times MIRRORSTATE_BATCH_SIZE updates (see claimLimit). */
export const UPDATES_PER_CLAIM_FACTOR = 40;

/**
 * Jobs the next claim takes: MIRRORSTATE_BATCH_SIZE, or fewer when jobs carry many updates, so that
 * a batch holds at most about UPDATES_PER_CLAIM_FACTOR × BATCH_SIZE updates (20,000 by default).
 * Unbounded, 500 jobs of 1,000 updates would be one 500,000-update transaction: hundreds of MB in
 * this process and every mirror's lock held for many seconds. The bound is loose because bigger
 * batches write faster per update, and because two batches that touch the same mirrors run one
 * after the other anyway (the write bench's figures for a few bounds: docs/performance.md, Figures
 * behind the design).
 */
export function claimLimit(batchSize: number, updatesPerJob: number): number {
  const target = batchSize * UPDATES_PER_CLAIM_FACTOR;
  return Math.max(1, Math.min(batchSize, Math.floor(target / Math.max(1, updatesPerJob))));
}

/** Updates a batch of jobs carries: `{updates: [...]}` counts its elements, anything else counts one. */
function updatesIn(jobs: QueuedJob[]): number {
  let n = 0;
  for (const job of jobs) {
    const updates = (job.data as { updates?: unknown } | null)?.updates;
    n += Array.isArray(updates) ? Math.max(1, updates.length) : 1;
  }
  return n;
}

/** One loop's wake-up: a notify while the loop is busy is kept, so it claims again straight after. */
class Signal {
  private pending = false;
  private resolve: (() => void) | undefined;

  wake(): void {
    if (this.resolve) this.resolve();
    else this.pending = true;
  }

  /** Waits up to `ms`, or less when woken (`wakeable`) or stopped. */
  wait(ms: number, wakeable: boolean, stopped: () => boolean): Promise<void> {
    if (stopped() || (wakeable && this.pending)) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.resolve = undefined;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.resolve = () => {
        if (wakeable || stopped()) done();
      };
    });
  }
}

export class Claimer {
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly signals: Signal[] = [];
  private listener: { close(): Promise<void> } | null = null;
  private claimSql = '';
  /**
   * Updates per job, as the last claim found them: sizes the next claim (see claimLimit). It starts
   * at a message's maximum (docs/message.md, The job), so that the first claim after a start is
   * small whatever waits in the queue, and the next ones adapt.
   */
  private updatesPerJob = MAX_UPDATES_PER_MESSAGE;
  private reclaimSql = '';
  private readonly log: Logger;

  constructor(private readonly options: ClaimerOptions) {
    this.log = options.logger.child({ component: 'consumer' });
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { boss, bossSchema, concurrency } = this.options;
    const queue = await boss.getQueue(UPDATES_QUEUE);
    if (!queue) throw new Error(`queue ${UPDATES_QUEUE} does not exist`);
    const s = quoteIdent(bossSchema);
    const table = `${s}.${quoteIdent(queue.table)}`;
    const claimable = `name = $1 and state < 'active' and not blocked and start_after <= ${s}.job_now()`;
    // The ids come from an uncorrelated ARRAY(...) subquery, an InitPlan run once (as pg-boss's own
    // fetch does): as a joined subquery the planner may put it on the inner side of a nested loop
    // and run it again per row, and a LIMIT … SKIP LOCKED run twice picks different rows.
    const returning = `returning j.id, j.data, j.retry_count as "retryCount"`;
    this.claimSql = `delete from ${table} as j
       where j.name = $1 and j.id = any(array(
         select id from ${table} where ${claimable} order by priority desc, created_on limit $2 for update skip locked))
       ${returning}`;
    this.reclaimSql = `delete from ${table} as j
       where j.name = $1 and j.id = any(array(
         select id from ${table} where ${claimable} and id = any($2::uuid[]) for update skip locked))
       ${returning}`;

    const db = boss.getDb();
    if (typeof db.beginTransaction !== 'function') throw new Error('pg-boss database cannot open a transaction');
    this.running = true;
    for (let i = 0; i < concurrency; i++) this.signals.push(new Signal());
    if (typeof db.listen === 'function') {
      try {
        this.listener = await db.listen(
          notifyChannel(bossSchema),
          (payload) => {
            if (payload === UPDATES_QUEUE) this.wakeAll();
          },
          () => this.wakeAll(),
        );
      } catch (err) {
        this.log.warn({ err }, `cannot LISTEN for new jobs; polling every ${this.pollMs} ms instead`);
      }
    }
    this.loops = this.signals.map((signal) => this.loop(signal));
  }

  /** Stops claiming and waits for the batches in hand to commit. Idempotent. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wakeAll();
    await Promise.all(this.loops);
    this.loops = [];
    this.signals.length = 0;
    await this.listener?.close().catch(() => undefined);
    this.listener = null;
  }

  private get pollMs(): number {
    return this.options.pollIntervalMs ?? POLL_INTERVAL_MS;
  }

  private wakeAll(): void {
    for (const signal of this.signals) signal.wake();
  }

  private async loop(signal: Signal): Promise<void> {
    const stopped = () => !this.running;
    let failures = 0;
    while (this.running) {
      let full = false;
      try {
        full = await this.claimAndWrite();
        failures = 0;
      } catch (err) {
        failures++;
        const delay = Math.min(BACKOFF_FIRST_MS * 2 ** (failures - 1), BACKOFF_MAX_MS);
        if (!this.options.outage?.report(err)) {
          this.log.error({ err, retryInMs: delay }, 'batch failed and rolled back; its jobs stay queued and are claimed again');
        }
        await signal.wait(delay, false, stopped);
        continue;
      }
      // A full batch means more are waiting: claim again at once (pg-boss's burstWhenBatchFull).
      if (!full) await signal.wait(this.pollMs, true, stopped);
    }
  }

  /** One batch: claim, write, commit. True when the claim came back full (more may be waiting). */
  private async claimAndWrite(): Promise<boolean> {
    const limit = claimLimit(this.options.batchSize, this.updatesPerJob);
    const jobs = await this.inClaim(this.claimSql, [UPDATES_QUEUE, limit], false);
    return jobs.length === limit;
  }

  /**
   * Claims with `sql` and writes what it claimed, in one transaction. A batch the catalog refuses
   * for its data (Consumer.handle logged it) is claimed again at once, by its ids, and written
   * update by update; whatever another worker claimed meanwhile is that worker's to write.
   */
  private async inClaim(sql: string, params: unknown[], isolate: boolean): Promise<QueuedJob[]> {
    const tx = await this.options.boss.getDb().beginTransaction!();
    let jobs: QueuedJob[] = [];
    try {
      jobs = (await tx.db.executeSql(sql, params)).rows as QueuedJob[];
      if (jobs.length > 0) {
        if (!isolate) this.updatesPerJob = updatesIn(jobs) / jobs.length;
        await this.options.write(jobs, tx.db, isolate);
      }
      await tx.commit();
      return jobs;
    } catch (err) {
      await tx.rollback().catch(() => undefined);
      if (jobs.length > 0) this.options.onBatchFailed?.(err);
      if (isolate || jobs.length === 0 || !isPoison(err)) throw err;
    }
    return this.inClaim(this.reclaimSql, [UPDATES_QUEUE, jobs.map((job) => job.id)], true);
  }
}
