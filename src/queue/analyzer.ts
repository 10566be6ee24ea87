/**
 * Keeps the planner's statistics of pg-boss's job table current while the queue changes fast.
 *
 * Why: pg-boss's fetch (`state < 'active' order by priority, created_on limit N for update skip
 * locked`) is planned from the table's statistics. When they say the queue is small (a fresh table,
 * or a queue that was near empty at the last ANALYZE) and a backlog then forms, the planner reads
 * and sorts every queued row on each fetch instead of walking the index to the first N, and a deep
 * queue drains many times slower (docs/performance.md, Figures behind the design). Autovacuum
 * fixes that eventually, but only when it is on (it is off on some servers) and after its naptime.
 *
 * So every ANALYZE_CHECK_MS the daemon reads `n_mod_since_analyze` of the job table's partitions
 * and ANALYZEs the ones changed by more than autovacuum's own threshold (50 rows + 10%, but at
 * least MIN_CHANGED_ROWS). `skip_locked`: a replica or autovacuum already analyzing it is enough.
 * A role that does not own the table gets a warning from the server, not an error: then this
 * does nothing and the operator's autovacuum settings are the remedy.
 *
 * Dead rows, the same way: every job leaves two (its fetch is an UPDATE, its settle a DELETE), and
 * fetch walks the queue's index from the oldest job, so the entries of jobs already taken pile up
 * in front of the live ones until a VACUUM removes them, and every claim pays for stepping over
 * them (docs/performance.md, Figures behind the design). A queue drained at
 * thousands of jobs a second makes that many dead rows between two passes of autovacuum's one-minute
 * naptime, and with autovacuum off nothing ever removes them. A partition with more dead rows than
 * autovacuum's threshold (50 + 20% of live rows, but at least MIN_DEAD_ROWS) is vacuumed (and
 * analyzed in the same pass).
 */
import type { Logger } from '../log.js';

export const ANALYZE_CHECK_MS = 15_000;
export const MIN_CHANGED_ROWS = 10_000;
export const MIN_DEAD_ROWS = 10_000;

export interface QueueAnalyzerDb {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  executeSql(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

export interface QueueAnalyzerOptions {
  db: QueueAnalyzerDb;
  bossSchema: string;
  logger: Logger;
  intervalMs?: number;
}

export interface StalePartition {
  table: string;
  /** `vacuum`: too many dead rows (the vacuum analyzes too); `analyze`: statistics out of date only. */
  action: 'vacuum' | 'analyze';
}

/** The job table's partitions with too many dead rows, or changed enough since their last ANALYZE. */
export async function staleJobPartitions(db: QueueAnalyzerDb, bossSchema: string): Promise<StalePartition[]> {
  const { rows } = await db.executeSql(
    `select format('%I.%I', s.schemaname, s.relname) as table,
            case when s.n_dead_tup > greatest($3::bigint, 50 + 0.2 * greatest(s.n_live_tup, 0)) then 'vacuum' else 'analyze' end as action
       from pg_stat_user_tables s
       join pg_inherits i on i.inhrelid = s.relid
       join pg_class p on p.oid = i.inhparent
       join pg_namespace n on n.oid = p.relnamespace
      where n.nspname = $1 and p.relname = 'job'
        and (s.n_mod_since_analyze > greatest($2::bigint, 50 + 0.1 * greatest(s.n_live_tup, 0))
             or s.n_dead_tup > greatest($3::bigint, 50 + 0.2 * greatest(s.n_live_tup, 0)))
      order by 1`,
    [bossSchema, MIN_CHANGED_ROWS, MIN_DEAD_ROWS],
  );
  return rows as StalePartition[];
}

export class QueueAnalyzer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly log: Logger;

  constructor(private readonly options: QueueAnalyzerOptions) {
    this.log = options.logger.child({ component: 'queue-analyzer' });
  }

  /**
   * Checks at once, then every interval: a daemon started on a backlog (after an outage, say) is
   * when the statistics are most likely stale, and waiting out the first interval would drain it
   * on the slow plan for that long.
   */
  start(): void {
    if (this.timer) return;
    const check = () => {
      this.running ??= this.runOnce().finally(() => (this.running = undefined));
    };
    this.timer = setInterval(check, this.options.intervalMs ?? ANALYZE_CHECK_MS);
    this.timer.unref();
    check();
  }

  /** One check; VACUUMs or ANALYZEs what is stale. Never throws: this is an optimisation. */
  async runOnce(): Promise<StalePartition[]> {
    const { db, bossSchema } = this.options;
    try {
      const stale = await staleJobPartitions(db, bossSchema);
      for (const { table, action } of stale) {
        const started = performance.now();
        await db.executeSql(action === 'vacuum' ? `vacuum (skip_locked, analyze) ${table}` : `analyze (skip_locked) ${table}`);
        this.log.debug({ table, action, ms: Math.round(performance.now() - started) }, 'maintained the job table');
      }
      return stale;
    } catch (err) {
      this.log.warn({ err }, 'could not vacuum or analyze the job table; will try again');
      return [];
    }
  }

  /** Idempotent: no new check starts; waits for one in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
