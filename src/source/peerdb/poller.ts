/**
 * The PeerDB source's long-lived part, and the only one that knows about time.
 *
 * Every interval (from the start of one tick to the next), on every replica:
 *   not leading → try to take the leader lock (leader.ts); a follower therefore takes over at most
 *                 one interval after the leader's session ended, two after it died (the server
 *                 notices a killed process's socket at once; a cut network, on TCP keepalive);
 *   leading     → one poll (sync.ts). A poll that fails (PeerDB unreachable, a statement error)
 *                 sets mirrorstate_peerdb_up 0, drops the PeerDB connection and waits longer
 *                 before the next try (doubling up to MAX_BACKOFF_MS); the first good poll resets it.
 * The lock connection going away ends leadership at once: no poll starts without it, and a poll in
 * flight cannot commit its publish (it runs on that connection when the queue shares the catalog).
 * Nothing here ever stops the rest of the daemon: draining and serving go on whatever PeerDB does.
 */
import pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { type Logger, redactUrl } from '../../log.js';
import type { PeerdbMetrics } from '../../metrics/daemon.js';
import { connectionConfig, DEFAULT_SESSION_LIMITS, type SessionLimits } from '../../db/connection.js';
import { MAX_TABLES_PER_UPDATE } from '../../update.js';
import { type Leadership, tryLead } from './leader.js';
import { PEERDB_SESSION_OPTIONS, PeerdbTooOldError, type PeerdbShape, readShape, type Tails } from './readPeerdb.js';
import { type SyncSummary, syncOnce } from './sync.js';

export const MAX_BACKOFF_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** Client-side bound on one PeerDB statement (the server's statement_timeout is the first). */
const PEERDB_QUERY_TIMEOUT_MS = 35_000;

export interface PeerdbPollerOptions {
  peerdbUrl: string;
  catalogUrl: string;
  schema: string;
  boss: PgBoss;
  queueSharesCatalog: boolean;
  intervalMs: number;
  /** MIRRORSTATE_MAX_FUTURE: what the daemon accepts is what the source publishes. */
  maxFutureMs?: number;
  /** MIRRORSTATE_PEERDB_NUMBERS_INTERVAL (decide.ts). */
  numbersIntervalMs?: number;
  logger: Logger;
  metrics: PeerdbMetrics;
  /** Session limits of its connections (default: the settings' defaults). */
  limits?: SessionLimits;
}

/** A connection to PeerDB's catalog with the source's session settings, and what it found there. */
export async function connectPeerdb(
  url: string, logger: Logger, limits: SessionLimits = DEFAULT_SESSION_LIMITS,
): Promise<{ client: pg.Client; shape: PeerdbShape }> {
  const client = new pg.Client({
    // PEERDB_SESSION_OPTIONS carries the source's own, shorter statement timeout.
    ...connectionConfig(url, { ...limits, statementTimeoutMs: 0 }),
    application_name: 'mirrorstate-peerdb',
    options: PEERDB_SESSION_OPTIONS,
    keepAlive: true,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: PEERDB_QUERY_TIMEOUT_MS,
  });
  // Errors of an idle connection (PeerDB restarted) reach the next query; the event must not crash us.
  client.on('error', (err) => logger.debug({ err: { message: err.message } }, 'PeerDB connection error'));
  try {
    await client.connect();
    return { client, shape: await readShape(client) };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

export class PeerdbPoller {
  private readonly log: Logger;
  private leadership: Leadership | null = null;
  private peerdb: { client: pg.Client; shape: PeerdbShape } | null = null;
  private tails: Tails | null = null;
  private memory: SyncSummary['memory'] | null = null;
  private failures = 0;
  /** Skips already logged: a skipped mirror is counted at every poll but logged once per reason. */
  private readonly loggedSkips = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private started = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: PeerdbPollerOptions) {
    this.log = options.logger.child({ component: 'peerdb' });
  }

  /**
   * Checks PeerDB once before the daemon reports itself running: a catalog before V44 is a
   * start-up error (PeerdbTooOldError); an unreachable one only a warning (the poller retries).
   */
  async start(): Promise<void> {
    if (this.started || this.stopping) return;
    this.started = true;
    const { metrics, peerdbUrl, intervalMs } = this.options;
    metrics.up.set(0);
    metrics.leader.set(0);
    metrics.lastPoll.set(0);
    try {
      const probe = await connectPeerdb(peerdbUrl, this.log, this.options.limits);
      await probe.client.end().catch(() => undefined);
    } catch (err) {
      if (err instanceof PeerdbTooOldError) throw err;
      this.log.warn({ err: { message: (err as Error).message }, peerdb: redactUrl(peerdbUrl) }, 'PeerDB catalog unreachable at start; will keep trying');
    }
    this.log.info({ peerdb: redactUrl(peerdbUrl), intervalMs }, 'PeerDB source started');
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => (this.ticking = undefined));
    }, delayMs);
  }

  /** Ticks start an interval apart (a poll that took longer is followed at once); failures back off from the end of the last. */
  private async tick(): Promise<void> {
    const { intervalMs } = this.options;
    const started = performance.now();
    if (!this.leadership || this.leadership.isLost()) await this.tryToLead();
    if (this.leadership && !this.stopping) await this.poll();
    const delay = this.failures === 0
      ? Math.max(0, intervalMs - (performance.now() - started))
      : Math.min(MAX_BACKOFF_MS, intervalMs * 2 ** Math.min(this.failures, 10));
    this.schedule(delay);
  }

  private async tryToLead(): Promise<void> {
    const { catalogUrl, schema, metrics } = this.options;
    this.leadership = null;
    try {
      const leadership = await tryLead(catalogUrl, schema, 'mirrorstate-peerdb-leader', this.log, this.options.limits);
      if (!leadership) return;
      if (this.stopping) {
        await leadership.release();
        return;
      }
      this.leadership = leadership;
      // A new leader reads PeerDB's history tables afresh (readPeerdb.ts), and what was published
      // from the catalog: another leader may have published since.
      this.tails = null;
      this.memory = null;
      metrics.leader.set(1);
      this.log.info('leading: this replica polls PeerDB');
      void leadership.lost.then(() => {
        if (this.leadership !== leadership) return;
        this.leadership = null;
        metrics.leader.set(0);
        metrics.up.set(0);
        if (!this.stopping) this.log.warn('leadership lost with the lock connection: polling stops until the lock is taken again');
      });
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'could not try the PeerDB leader lock: catalog unreachable');
    }
  }

  private async poll(): Promise<void> {
    const { metrics, boss, schema, queueSharesCatalog, peerdbUrl, maxFutureMs, numbersIntervalMs } = this.options;
    const leadership = this.leadership!;
    const end = metrics.pollDuration.startTimer();
    try {
      this.peerdb ??= await connectPeerdb(peerdbUrl, this.log, this.options.limits);
      const summary = await syncOnce({
        peerdb: this.peerdb.client, shape: this.peerdb.shape, catalog: leadership.client, schema, boss, queueSharesCatalog, tails: this.tails,
        memory: this.memory, maxFutureMs, numbersIntervalMs,
      });
      // A poll that ran while the lock went away changed nothing that counts (see sync.ts), and the
      // next leader starts from the catalog's memory; do not report it as ours.
      if (leadership.isLost()) return;
      this.tails = summary.tails;
      this.memory = summary.memory;
      this.failures = 0;
      metrics.up.set(1);
      metrics.lastPoll.set(Date.now() / 1000);
      metrics.published.inc(summary.published);
      for (const s of summary.skipped) {
        metrics.skipped.inc({ reason: s.reason });
        const key = `${s.mirror}\u0000${s.reason}`;
        if (this.loggedSkips.has(key)) continue;
        this.loggedSkips.add(key);
        this.log.warn({ mirror: s.mirror, reason: s.reason, detail: s.detail }, 'PeerDB mirror skipped');
      }
      for (const u of summary.undecodable) {
        // Once per mirror: the source goes on as without a config (default slot, `qrep`), see config.ts.
        const key = `${u.mirror}\u0000config`;
        if (this.loggedSkips.has(key)) continue;
        this.loggedSkips.add(key);
        this.log.warn({ mirror: u.mirror, detail: u.reason }, 'PeerDB mirror config_proto does not decode: using the default slot name and flow type');
      }
      for (const t of summary.truncated) {
        const key = `${t.mirror}\u0000tables`;
        if (this.loggedSkips.has(key)) continue;
        this.loggedSkips.add(key);
        this.log.warn({ mirror: t.mirror, tables: t.tables, published: MAX_TABLES_PER_UPDATE }, 'PeerDB mirror has more tables than an update carries: publishing the first by name');
      }
      const level = summary.published > 0 ? 'info' : 'debug';
      this.log[level]({ seen: summary.seen, published: summary.published, dropped: summary.dropped, skipped: summary.skipped.length }, 'PeerDB poll');
    } catch (err) {
      this.failures++;
      metrics.up.set(0);
      const message = (err as Error).message;
      if (err instanceof PeerdbTooOldError) this.log.error({ err: { message } }, 'PeerDB catalog too old');
      else this.log.warn({ err: { message, code: (err as { code?: string }).code }, failures: this.failures }, 'PeerDB poll failed; retrying with backoff');
      // Start the next try from a fresh connection and a fresh read of the history tables.
      await this.peerdb?.client.end().catch(() => undefined);
      this.peerdb = null;
      this.tails = null;
      // A failed publish may or may not have committed: read the catalog's word next time.
      this.memory = null;
    } finally {
      end();
    }
  }

  /** Idempotent: no new poll starts, the one in flight ends, the lock is released. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearTimeout(this.timer);
      await this.ticking;
      clearTimeout(this.timer);
      await this.peerdb?.client.end().catch(() => undefined);
      this.peerdb = null;
      await this.leadership?.release();
      this.leadership = null;
      this.options.metrics.leader.set(0);
    })();
    return this.stopping;
  }
}
