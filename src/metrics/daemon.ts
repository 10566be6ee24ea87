/**
 * The daemon's own metric families (docs/metrics.md), declared once: name, help, type, labels.
 * Per-mirror families are not prom-client objects: see metrics/families.ts and textCache.ts. Nor are the three
 * scrape families below: their values belong to one scrape (concurrent scrapes may differ), so
 * the route renders them per response instead of sharing a prom-client gauge.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { buildInfo } from '../buildInfo.js';
import type { Family } from './exposition.js';
import { NO_SHARDING, type Shard } from './shard.js';

export const CATALOG_UP: Family = {
  name: 'mirrorstate_catalog_up',
  type: 'gauge',
  help: '1 if this scrape reached the catalog (its check that nothing changed, or its read) and the data it serves was read without error; 0 if a read failed or ran out of time (the per-mirror series are then those of the last good snapshot).',
};
export const SNAPSHOT_TIMESTAMP: Family = {
  name: 'mirrorstate_snapshot_timestamp_seconds',
  type: 'gauge',
  help: 'The catalog state the per-mirror data in this scrape shows, in Unix seconds: every change committed before it is in it (0: never read).',
};
export const SCRAPE_DURATION: Family = {
  name: 'mirrorstate_scrape_duration_seconds',
  type: 'gauge',
  help: 'Time this scrape spent on the catalog: its check that nothing changed, or the read it waited for.',
};

export type UpdateResult = 'applied' | 'stale' | 'duplicate' | 'rejected';

export const BATCH_FAILURE_REASONS = ['refused', 'error'] as const;

export interface DaemonMetrics {
  registry: Registry;
  updates: Counter<'result'>;
  batchSize: Histogram;
  batchDuration: Histogram;
  journalTrimmed: Counter;
  /** Batches rolled back, by reason: `refused` (the catalog refused their data) or `error`. */
  batchFailures: Counter<'reason'>;
  queueJobs: Gauge<'queue' | 'state'>;
  /** Only when the PeerDB source is on (MIRRORSTATE_PEERDB_URL): its families are absent otherwise. */
  peerdb: PeerdbMetrics | undefined;
}

/** The PeerDB source's families (docs/metrics.md, PeerDB source families). */
export interface PeerdbMetrics {
  up: Gauge;
  leader: Gauge;
  lastPoll: Gauge;
  pollDuration: Histogram;
  published: Counter;
  skipped: Counter<'reason'>;
}

/** Why the source skipped a mirror (decide.ts). */
export const PEERDB_SKIP_REASONS = ['status', 'name', 'invalid'] as const;

function createPeerdbMetrics(registry: Registry): PeerdbMetrics {
  const skipped = new Counter({
    name: 'mirrorstate_peerdb_skipped_total',
    help: 'PeerDB mirrors a poll skipped, by reason: status (flows.status outside 0-11), name (a name the message refuses), invalid (any other field).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of PEERDB_SKIP_REASONS) skipped.inc({ reason }, 0);
  return {
    up: new Gauge({
      name: 'mirrorstate_peerdb_up',
      help: '1 if this replica leads and its last poll of the PeerDB catalog succeeded; 0 after a failed poll, before the first, and on replicas that do not lead (see mirrorstate_peerdb_leader).',
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'mirrorstate_peerdb_leader',
      help: '1 on the one replica that polls PeerDB now (it holds the leader lock), 0 on the others.',
      registers: [registry],
    }),
    lastPoll: new Gauge({
      name: 'mirrorstate_peerdb_last_poll_timestamp_seconds',
      help: 'When the last successful poll read the PeerDB catalog, in Unix seconds (0: never, or not leading).',
      registers: [registry],
    }),
    pollDuration: new Histogram({
      name: 'mirrorstate_peerdb_poll_duration_seconds',
      help: 'Time per poll of the PeerDB catalog: read, decide, publish.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    published: new Counter({
      name: 'mirrorstate_peerdb_published_total',
      help: 'State updates the PeerDB source published.',
      registers: [registry],
    }),
    skipped,
  };
}

/**
 * Set once at start and never changed: which build runs, and which shard of how many this replica
 * serves. The shard alerts (grafana/config.yml) compare the ordinals the replicas of a job report
 * with the total each of them was given, as kube-state-metrics' mixin does.
 */
function registerIdentity(registry: Registry, shard: Shard): void {
  const info = buildInfo();
  new Gauge({
    name: 'mirrorstate_build_info',
    help: 'Always 1; labels name the build: version (package.json), revision (the commit it was built from), nodejs (the runtime).',
    labelNames: ['version', 'revision', 'nodejs'] as const,
    registers: [registry],
  }).set(info, 1);
  new Gauge({
    name: 'mirrorstate_shard_ordinal',
    help: "This replica's shard i of MIRRORSTATE_METRICS_SHARD=i/n (0 when not sharded): it exports the per-mirror series of shard i only.",
    registers: [registry],
  }).set(shard.index);
  new Gauge({
    name: 'mirrorstate_total_shards',
    help: 'The n of MIRRORSTATE_METRICS_SHARD=i/n (1 when not sharded): how many replicas split the per-mirror series.',
    registers: [registry],
  }).set(shard.count);
}

export function createDaemonMetrics(options: { peerdb?: boolean; shard?: Shard } = {}): DaemonMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerIdentity(registry, options.shard ?? NO_SHARDING);
  const updates = new Counter({
    name: 'mirrorstate_updates_total',
    help: 'State updates taken from the queue, by result: applied, stale, duplicate, rejected.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  // Every result exists from the start, so rate() and absent() work before the first batch.
  for (const result of ['applied', 'stale', 'duplicate', 'rejected'] satisfies UpdateResult[]) updates.inc({ result }, 0);
  const queueJobs = new Gauge({
    name: 'mirrorstate_queue_jobs',
    help: "Jobs per pg-boss state in the updates queue and its dead-letter queue (read every 5 s; past 50,000 jobs from pg-boss's cached counts, retry within created).",
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
  });
  const batchFailures = new Counter({
    name: 'mirrorstate_batch_failures_total',
    help: 'Batches rolled back, their jobs left queued to be tried again, by reason: refused (the catalog refused their data; written update by update next), error (anything else: a lost connection, a timeout).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of BATCH_FAILURE_REASONS) batchFailures.inc({ reason }, 0);
  return {
    batchFailures,
    registry,
    updates,
    batchSize: new Histogram({
      name: 'mirrorstate_batch_size',
      help: 'Updates per catalog write.',
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
      registers: [registry],
    }),
    batchDuration: new Histogram({
      name: 'mirrorstate_batch_duration_seconds',
      help: 'Time per catalog write, from the first statement to the commit.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    journalTrimmed: new Counter({
      name: 'mirrorstate_journal_trimmed_total',
      help: 'Journal rows removed by retention.',
      registers: [registry],
    }),
    queueJobs,
    peerdb: options.peerdb ? createPeerdbMetrics(registry) : undefined,
  };
}
