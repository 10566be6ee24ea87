/**
 * Wiring only: config → logger → catalog → queue → consumer → http server → shutdown.
 *
 * Shutdown order (SIGTERM/SIGINT): stop the PeerDB poller (its poll in flight ends, its lock is
 * released), stop taking jobs and let the batches in hand commit, stop the trimmer, the queue-jobs
 * poller and the queue analyzer, stop pg-boss, stop HTTP, close the metrics' listening connection
 * and the snapshot and catalog pools, stop the outage probes, then the embedded PostgreSQL.
 */
import type { PgBoss } from 'pg-boss';
import { withTimeout } from './async.js';
import { appliedVersion, latestVersion } from './catalog/migrate.js';
import { type Config, queueSharesCatalog, sessionLimits } from './config.js';
import { createPool, type Pool } from './db/pool.js';
import { type Databases, migrateAll, resolveDatabases } from './databases.js';
import { registerApiRoutes } from './http/api.js';
import { registerHealthRoutes } from './http/health.js';
import { registerIngestRoute } from './http/ingest.js';
import { registerStatusPage } from './http/page/routes.js';
import { HttpServer } from './http/server.js';
import { readWebConfig } from './http/webConfig/read.js';
import { type Logger, redactUrl } from './log.js';
import { createDaemonMetrics, type DaemonMetrics } from './metrics/daemon.js';
import { QueueJobsPoller } from './queue/jobCounts.js';
import { Outage } from './db/outage.js';
import { QueueAnalyzer } from './queue/analyzer.js';
import { registerMetricsRoute } from './metrics/route.js';
import { selectFamilies } from './metrics/families.js';
import { createSnapshotPool } from './metrics/snapshotPool.js';
import { MirrorSnapshots } from './metrics/snapshot.js';
import { createBoss } from './queue/boss.js';
import { Consumer } from './queue/consumer.js';
import { Trimmer } from './queue/trimmer.js';
import { PeerdbPoller } from './source/peerdb/poller.js';

/** Kubernetes' default probe timeout is 1 s; answer well inside it. */
const READINESS_TIMEOUT_MS = 800;

export class Daemon {
  private readonly log: Logger;
  private pool: Pool | undefined;
  private boss: PgBoss | undefined;
  private consumer: Consumer | undefined;
  private trimmer: Trimmer | undefined;
  private peerdb: PeerdbPoller | undefined;
  private http: HttpServer | undefined;
  private queueJobs: QueueJobsPoller | undefined;
  private queueAnalyzer: QueueAnalyzer | undefined;
  private snapshotPool: Pool | undefined;
  private snapshots: MirrorSnapshots | undefined;
  private databases: Databases | undefined;
  private catalogOutage: Outage | undefined;
  private queueOutage: Outage | undefined;
  private stopping: Promise<void> | undefined;
  readonly metrics: DaemonMetrics;
  private readonly latestMigration = latestVersion();
  port = 0;

  constructor(
    private readonly config: Config,
    logger: Logger,
  ) {
    this.log = logger;
    this.metrics = createDaemonMetrics({ peerdb: config.peerdbUrl !== undefined, shard: config.metricsShard });
  }

  async start(): Promise<void> {
    const { config, log } = this;
    // First: a bad file stops the start before any database is touched (cli.ts prints its one line).
    const webConfig = config.webConfigFile === undefined ? undefined : await readWebConfig(config.webConfigFile);
    this.databases = await resolveDatabases(config, log);
    const { catalogUrl, queueUrl } = this.databases;
    const limits = sessionLimits(config);
    log.info(
      {
        catalog: redactUrl(catalogUrl), queue: redactUrl(queueUrl), schema: config.schema, bossSchema: config.bossSchema,
        peerdb: config.peerdbUrl === undefined ? 'off' : redactUrl(config.peerdbUrl),
      },
      'starting',
    );
    // A restart of a database is logged once per outage, however many parts meet it (db/outage.ts).
    const shared = catalogUrl === queueUrl;
    const catalogOutage = new Outage({ name: shared ? 'database' : 'catalog database', probe: () => this.pool!.query('select 1'), logger: log });
    const queueOutage = shared
      ? catalogOutage
      : new Outage({ name: 'queue database', probe: () => this.boss!.getDb().executeSql('select 1'), logger: log });
    this.catalogOutage = catalogOutage;
    this.queueOutage = queueOutage;
    this.pool = createPool(catalogUrl, config.poolSize, 'mirrorstate', log, catalogOutage, limits);
    // The queue pool serves one connection per batch in flight (the claim's transaction, or pg-boss's
    // fetches and heartbeats with a separate queue database): size it for the concurrency plus
    // pg-boss's own work.
    this.boss = createBoss({
      connectionString: queueUrl,
      schema: config.bossSchema,
      max: config.concurrency + 6,
      logger: log.child({ component: 'pg-boss' }),
      worker: true,
      outage: queueOutage,
      limits,
    });
    await this.boss.start();
    await migrateAll(config, this.pool, this.boss, log);

    // Before the consumer: its first check runs at once, so a backlog found at start is claimed on
    // current statistics (analyzer.ts).
    this.queueAnalyzer = new QueueAnalyzer({ db: this.boss.getDb(), bossSchema: config.bossSchema, logger: log });
    this.queueAnalyzer.start();
    this.consumer = new Consumer({
      boss: this.boss,
      schema: config.schema,
      bossSchema: config.bossSchema,
      outage: queueOutage,
      batchSize: config.batchSize,
      concurrency: config.concurrency,
      catalogPool: queueSharesCatalog(config) ? null : this.pool,
      logger: log,
      metrics: this.metrics,
      maxFutureMs: config.maxFutureMs,
    });
    await this.consumer.start();

    this.trimmer = new Trimmer({
      boss: this.boss,
      pool: this.pool,
      schema: config.schema,
      journalMaxAgeMs: config.journalMaxAgeMs,
      journalMaxPerMirror: config.journalMaxPerMirror,
      transitionsMaxAgeMs: config.transitionsMaxAgeMs,
      trimIntervalMs: config.trimIntervalMs,
      logger: log,
      metrics: this.metrics,
      outage: catalogOutage,
    });
    await this.trimmer.start();

    if (this.databases.peerdbUrl !== undefined && this.metrics.peerdb) {
      this.peerdb = new PeerdbPoller({
        peerdbUrl: this.databases.peerdbUrl, catalogUrl, limits, schema: config.schema, boss: this.boss,
        queueSharesCatalog: queueSharesCatalog(config), intervalMs: config.peerdbPollIntervalMs, logger: log, metrics: this.metrics.peerdb,
        maxFutureMs: config.maxFutureMs, numbersIntervalMs: config.peerdbNumbersIntervalMs,
      });
      await this.peerdb.start();
    }

    this.http = new HttpServer(log, { webConfig });
    registerHealthRoutes(this.http, { check: () => this.readiness() });
    this.queueJobs = new QueueJobsPoller({
      db: this.boss.getDb(),
      bossSchema: config.bossSchema,
      gauge: this.metrics.queueJobs,
      logger: log,
      outage: queueOutage,
    });
    await this.queueJobs.start();
    this.snapshotPool = createSnapshotPool(catalogUrl, log, catalogOutage, limits);
    const snapshots = new MirrorSnapshots({
      pool: this.snapshotPool, schema: config.schema, logger: log, shard: config.metricsShard, outage: catalogOutage,
      watchUrl: catalogUrl, watchLimits: limits, families: selectFamilies(config.metricAllowlist, config.metricDenylist),
    });
    this.snapshots = snapshots;
    snapshots.start();
    registerMetricsRoute(this.http, { registry: this.metrics.registry, snapshots });
    registerApiRoutes(this.http, { pool: this.pool, schema: config.schema, logger: log });
    registerIngestRoute(this.http, { boss: this.boss, token: config.ingestToken, logger: log, maxFutureMs: config.maxFutureMs });
    registerStatusPage(this.http, { pool: this.pool, schema: config.schema, logger: log });
    const address = await this.http.start(config.httpPort, config.httpHost);
    this.port = address.port;
    log.info({ port: this.port }, 'mirrorstate running');
  }

  async readiness(): Promise<string[]> {
    const reasons: string[] = [];
    const pool = this.pool;
    if (!pool) return ['starting'];
    try {
      // A probe must get an answer in time even when the catalog does not answer at all.
      const applied = await withTimeout(appliedVersion(pool, this.config.schema), READINESS_TIMEOUT_MS);
      if (applied < this.latestMigration) {
        reasons.push(`catalog migrations behind: at ${applied}, files reach ${this.latestMigration}; run mirrorstate migrate`);
      }
    } catch (err) {
      reasons.push(`catalog unreachable: ${(err as Error).message}`);
    }
    if (this.queueOutage !== this.catalogOutage && this.boss) {
      // A queue database of its own: the consumer can do nothing without it either.
      try {
        await withTimeout(this.boss.getDb().executeSql('select 1'), READINESS_TIMEOUT_MS);
      } catch (err) {
        reasons.push(`queue database unreachable: ${(err as Error).message}`);
      }
    }
    if (!this.consumer?.running) reasons.push('consumer not running');
    return reasons;
  }

  /** Idempotent; resolves when everything is closed. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const log = this.log;
    if (this.databases === undefined) return; // nothing was started
    log.info('shutting down: finishing the batches in hand');
    await this.peerdb?.stop();
    await this.consumer?.stop();
    await this.trimmer?.stop();
    await this.queueJobs?.stop();
    await this.queueAnalyzer?.stop();
    await this.boss?.stop({ graceful: true, timeout: 30_000 });
    await this.http?.stop();
    await this.snapshots?.close();
    await this.snapshotPool?.end();
    await this.pool?.end();
    // Before the embedded server stops: it ends what pg-boss has not closed yet, and that is no outage.
    this.catalogOutage?.stop();
    this.queueOutage?.stop();
    await this.databases?.embedded?.stop();
    log.info('stopped');
  }
}
