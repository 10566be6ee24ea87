/**
 * The batch consumer: jobs in, one catalog write out, dead letters for what cannot be written.
 *
 * Settle rules (a written job is settled by deleting it, never by marking it completed):
 * - A job is settled only when its updates are committed. When the queue lives in the catalog
 *   database, the batch claims its jobs by deleting them in the transaction that writes them
 *   (claimer.ts), and the dead letters are inserted through it too: one commit settles all. Crash
 *   anywhere: nothing committed, the jobs are claimable again at once.
 * - With a separate queue database pg-boss's worker fetches the jobs, the catalog transaction
 *   commits, and the jobs are deleted after. A crash between the two redelivers jobs whose updates
 *   are already journaled (heartbeat, see boss.ts); the idempotency key makes that a no-op, and dead
 *   letters carry ids derived from (job, index), so a redelivered dead letter is not inserted twice.
 * - Invalid updates never fail a batch: each becomes one dead-letter job, and the valid updates of
 *   the same job still apply.
 * - An update the catalog itself refuses (a SQLSTATE that blames the data, see db/sqlstate.ts) fails
 *   its batch once. The batch then comes back (claimed again at once, or handed back by pg-boss with
 *   retryCount > 0) and is written under savepoints, bisected by mirror until the refused update is
 *   alone; it is dead-lettered and the rest is written. Savepoints cost two round trips, so first
 *   attempts go without them.
 * - Anything else (connection lost, serialization failure, timeout) throws: the transaction rolls
 *   back and the jobs are tried again with backoff.
 */
import { createHash } from 'node:crypto';
import type { PgBoss } from 'pg-boss';
import { applyBatch, compareVersions, type BatchOutcome } from '../catalog/applyBatch.js';
import { clientExecutor, type Executor } from '../catalog/sql.js';
import { isPoison, sqlState } from '../db/sqlstate.js';
import { inTransaction, type Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { DaemonMetrics } from '../metrics/daemon.js';
import type { Outage } from '../db/outage.js';
import { describeErrors, type FieldError, parseMessage, type StateUpdate } from '../update.js';
import { DEAD_LETTER_QUEUE, HEARTBEAT_REFRESH_SECONDS, UPDATES_QUEUE } from './boss.js';
import { Claimer, type QueuedJob } from './claimer.js';

/** The dead-letter job's data (docs/message.md, Dead letters). */
export interface DeadLetter {
  reason: string;
  errors: FieldError[];
  update: unknown;
  job: { id: string; index: number | null };
}

interface Origin {
  jobId: string;
  index: number | null;
}

export interface ConsumerOptions {
  boss: PgBoss;
  schema: string;
  /** pg-boss's schema: the claimer deletes from its job table. */
  bossSchema: string;
  batchSize: number;
  concurrency: number;
  /** Set when the queue has a database of its own: the catalog is written through this pool. */
  catalogPool: Pool | null;
  logger: Logger;
  /** Connection losses of the claimer's transactions go here (logged once per outage). */
  outage?: Outage;
  metrics: DaemonMetrics;
  /** MIRRORSTATE_MAX_FUTURE; default 5 minutes. */
  maxFutureMs?: number;
}

/** A dead letter's job id: the same source job and index always give the same id. */
export function deadLetterId(origin: Origin): string {
  const hex = createHash('sha256').update(`${origin.jobId}:${origin.index ?? 'job'}`).digest('hex');
  const variant = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function addOutcome(a: BatchOutcome, b: BatchOutcome): BatchOutcome {
  return {
    applied: a.applied + b.applied,
    stale: a.stale + b.stale,
    duplicate: a.duplicate + b.duplicate,
    transitions: a.transitions + b.transitions,
  };
}

const NOTHING: BatchOutcome = { applied: 0, stale: 0, duplicate: 0, transitions: 0 };

export class Consumer {
  private started = false;
  private claimer: Claimer | undefined;
  private readonly log: Logger;

  constructor(private readonly options: ConsumerOptions) {
    this.log = options.logger.child({ component: 'consumer' });
  }

  async start(): Promise<void> {
    if (this.started) return;
    const { boss, batchSize, concurrency, catalogPool } = this.options;
    if (catalogPool === null) {
      this.claimer = new Claimer({
        boss, bossSchema: this.options.bossSchema, batchSize, concurrency, logger: this.options.logger, outage: this.options.outage,
        write: (jobs, db, isolate) => this.handle(jobs, db, isolate),
        onBatchFailed: (err) => this.countFailure(err),
      });
      await this.claimer.start();
    } else {
      await boss.work<unknown>(UPDATES_QUEUE, {
        batchSize,
        localConcurrency: concurrency,
        // NOTIFY wakes the worker within milliseconds; polling is only the backstop.
        pollingIntervalSeconds: 1,
        notifyPollingIntervalSeconds: 5,
        // Under load, fetch again at once while batches come back full instead of sleeping.
        burstWhenBatchFull: true,
        heartbeatRefreshSeconds: HEARTBEAT_REFRESH_SECONDS,
      }, async (jobs) => {
        let outcome: BatchOutcome;
        try {
          outcome = await inTransaction(catalogPool, 'begin', (client) => this.handle(jobs, clientExecutor(client)));
        } catch (err) {
          this.countFailure(err);
          throw err;
        }
        await this.settle(jobs);
        return outcome;
      });
    }
    this.started = true;
    this.log.info({ batchSize, concurrency, claim: catalogPool === null ? 'in the catalog transaction' : 'pg-boss worker' }, 'consumer started');
  }

  /** Stops fetching and waits for the batches in hand to commit. Idempotent. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    if (this.claimer) await this.claimer.stop();
    else await this.options.boss.offWork(UPDATES_QUEUE, { wait: true });
    this.claimer = undefined;
    this.log.info('consumer stopped');
  }

  get running(): boolean {
    return this.started;
  }

  private countFailure(err: unknown): void {
    this.options.metrics.batchFailures.inc({ reason: isPoison(err) ? 'refused' : 'error' });
  }

  /**
   * Settles a written batch of the separate queue database, after the catalog commit, by deleting
   * its jobs through pg-boss's own deleteJob. Not left for pg-boss to mark completed: every update
   * lives on in the journal, so a completed copy would only be a second write per job (an UPDATE of
   * the job row and all its indexes, dearer than the DELETE: docs/performance.md, Figures behind
   * the design), a dead row for vacuum and another DELETE an hour later when pg-boss purges it.
   */
  private async settle(jobs: QueuedJob[]): Promise<void> {
    await this.options.boss.deleteJob(UPDATES_QUEUE, jobs.map((job) => job.id));
  }

  /**
   * One batch of jobs → one catalog write through `db` (+ dead letters). `isolate` writes it update
   * by update under savepoints: for a batch the catalog refused before (pg-boss hands it back with
   * retryCount > 0, or the claimer claims it again at once).
   */
  async handle(jobs: QueuedJob[], db: Executor, isolate = jobs.some((job) => job.retryCount > 0)): Promise<BatchOutcome> {
    const started = performance.now();
    const valid: StateUpdate[] = [];
    const origins = new Map<StateUpdate, Origin>();
    const deadLetters: DeadLetter[] = [];
    const now = Date.now();
    for (const job of jobs) {
      const message = parseMessage(job.data, now, this.options.maxFutureMs);
      if (!message.ok) {
        deadLetters.push({ reason: `${message.reason}: ${describeErrors(message.errors)}`, errors: message.errors, update: job.data, job: { id: job.id, index: null } });
        continue;
      }
      for (const element of message.elements) {
        if (element.result.ok) {
          valid.push(element.result.value);
          origins.set(element.result.value, { jobId: job.id, index: element.index });
        } else {
          deadLetters.push({
            reason: `invalid update: ${describeErrors(element.result.errors)}`,
            errors: element.result.errors,
            update: element.received,
            job: { id: job.id, index: element.index },
          });
        }
      }
    }

    let outcome = NOTHING;
    if (valid.length > 0 && isolate) {
      outcome = await this.writeIsolated(db, valid, origins, deadLetters);
    } else if (valid.length > 0) {
      try {
        outcome = await applyBatch(db, this.options.schema, valid);
      } catch (err) {
        if (isPoison(err)) {
          this.log.warn({ err, jobs: jobs.length }, 'the catalog refused this batch; it comes back to be written update by update');
        }
        throw err;
      }
    }
    if (deadLetters.length > 0) {
      await this.options.boss.insert(
        DEAD_LETTER_QUEUE,
        deadLetters.map((data) => ({ id: deadLetterId({ jobId: data.job.id, index: data.job.index }), data })),
        this.options.catalogPool === null ? { db } : {},
      );
    }
    const seconds = (performance.now() - started) / 1000;
    const { metrics } = this.options;
    metrics.batchSize.observe(valid.length);
    metrics.batchDuration.observe(seconds);
    metrics.updates.inc({ result: 'applied' }, outcome.applied);
    metrics.updates.inc({ result: 'stale' }, outcome.stale);
    metrics.updates.inc({ result: 'duplicate' }, outcome.duplicate);
    metrics.updates.inc({ result: 'rejected' }, deadLetters.length);
    if (deadLetters.length > 0) {
      this.log.warn({ deadLetters: deadLetters.length, first: deadLetters[0]?.reason }, 'dead-lettered invalid updates');
    }
    this.log.debug({ jobs: jobs.length, updates: valid.length, ...outcome, ms: Math.round(seconds * 1000) }, 'batch written');
    return outcome;
  }

  /**
   * Writes the batch under a savepoint. When the catalog refuses it for its data, splits the batch
   * by mirror (all updates of a mirror stay together, so version order is kept) until the update at
   * fault is alone, dead-letters it, and writes everything else.
   */
  private async writeIsolated(
    db: Executor,
    updates: StateUpdate[],
    origins: Map<StateUpdate, Origin>,
    deadLetters: DeadLetter[],
  ): Promise<BatchOutcome> {
    await db.executeSql('savepoint mirrorstate_batch');
    try {
      const outcome = await applyBatch(db, this.options.schema, updates);
      await db.executeSql('release savepoint mirrorstate_batch');
      return outcome;
    } catch (err) {
      if (!isPoison(err)) throw err;
      await db.executeSql('rollback to savepoint mirrorstate_batch');
      await db.executeSql('release savepoint mirrorstate_batch');
      const mirrors = [...new Set(updates.map((u) => u.mirror))];
      if (mirrors.length > 1) {
        const half = new Set(mirrors.slice(0, Math.ceil(mirrors.length / 2)));
        const first = await this.writeIsolated(db, updates.filter((u) => half.has(u.mirror)), origins, deadLetters);
        const second = await this.writeIsolated(db, updates.filter((u) => !half.has(u.mirror)), origins, deadLetters);
        return addOutcome(first, second);
      }
      if (updates.length > 1) {
        let outcome = NOTHING;
        for (const u of [...updates].sort(compareVersions)) {
          outcome = addOutcome(outcome, await this.writeIsolated(db, [u], origins, deadLetters));
        }
        return outcome;
      }
      const [update] = updates;
      if (!update) return NOTHING;
      const origin = origins.get(update) ?? { jobId: 'unknown', index: null };
      const message = `${(err as Error).message} (SQLSTATE ${sqlState(err)})`;
      deadLetters.push({
        reason: `the catalog refused the update: ${message}`,
        errors: [{ field: '', message }],
        update: update.payload,
        job: { id: origin.jobId, index: origin.index },
      });
      this.log.warn({ err, mirror: update.mirror, job: origin }, 'catalog refused an update; dead-lettered it');
      return NOTHING;
    }
  }
}
