/**
 * The shipped alerts, written once. `npm run generate` (scripts/generate.ts) renders them with
 * grafana/config.yml — the job selector, the labels that tell deployments apart, each alert's
 * thresholds, the runbook URL — into grafana/alerts/mirrorstate.rules.yml and the Kubernetes
 * PrometheusRule. Nothing here is a number an operator may want to change: those live in the config.
 *
 * To add an alert:
 *   1. an entry in a group below: its name, severity, `expr` (build every series with `c.m(...)`, so
 *      it carries the selector; aggregate `by (${c.by})`), and thresholds read with `c.duration(...)`,
 *      `c.seconds(...)`, `c.number(...)`; `for: true` when it waits `for` before firing;
 *   2. its entry under `alerts:` in grafana/config.yml, with those thresholds and `for`;
 *   3. its runbook: a `### <AlertName>` section under "## Alert runbooks" in docs/operating.md;
 *   4. promtool cases, firing and not, in grafana/alerts/mirrorstate.rules.test.yml;
 *   5. `npm run generate`, and commit what it wrote.
 * test/metrics/grafana.test.ts fails while a step is left out.
 */

export type Severity = 'critical' | 'warning';

/** What an alert's text is built from: the config, read through typed accessors. */
export interface AlertContext {
  /** A series selector: the family with the config's selector and these extra matchers. */
  m(family: string, matchers?: string): string;
  /** The labels that tell one mirrorstate deployment from another, for `by (…)` and `on (…)`. */
  by: string;
  /** The config's selector as written, for texts. */
  selector: string;
  /** A threshold of this alert given as a duration, in seconds. */
  seconds(key: string): number;
  /** A threshold of this alert given as a duration, as written (`15m`), for range selectors. */
  duration(key: string): string;
  /** A numeric threshold of this alert. */
  number(key: string): number;
  /** A duration threshold as people read it: `15m` → `15 minutes`. */
  human(key: string): string;
}

export interface AlertDefinition {
  alert: string;
  severity: Severity;
  /** Whether the config's `for` applies (the condition must hold that long). */
  for?: true;
  expr(c: AlertContext): string;
  summary(c: AlertContext): string;
  description(c: AlertContext): string;
}

export interface AlertGroup {
  name: string;
  alerts: AlertDefinition[];
}

const bytes = (n: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1 && n % 1024 === 0) {
    n /= 1024;
    i++;
  }
  return `${n} ${units[i]}`;
};

export const ALERT_GROUPS: AlertGroup[] = [
  {
    name: 'mirrorstate-mirrors',
    alerts: [
      {
        alert: 'MirrorFailed',
        severity: 'critical',
        for: true,
        expr: (c) => `${c.m('peerdb_mirror_status', 'status="failed"')} == 1`,
        summary: () => 'Mirror {{ $labels.mirror }} has failed',
        description: (c) =>
          `Mirror {{ $labels.mirror }} has been in status failed for more than ${c.human('for')}. \`mirrorstate status "{{ $labels.mirror }}"\` shows its transitions and last error.`,
      },
      {
        alert: 'MirrorErrorPersisting',
        severity: 'warning',
        for: true,
        expr: (c) => `${c.m('peerdb_mirror_error')} == 1`,
        summary: () => 'Mirror {{ $labels.mirror }} reports error class {{ $labels.class }}',
        description: (c) => `Every update of mirror {{ $labels.mirror }} for ${c.human('for')} has carried an error of class {{ $labels.class }}.`,
      },
      {
        alert: 'MirrorLagHigh',
        severity: 'warning',
        for: true,
        expr: (c) => `${c.m('peerdb_mirror_lag_seconds')} > ${c.seconds('lag')}`,
        summary: () => 'Mirror {{ $labels.mirror }} lags {{ $value | humanizeDuration }}',
        description: (c) => `Mirror {{ $labels.mirror }} has reported a replication lag above ${c.human('lag')} for ${c.human('for')}.`,
      },
      {
        // Statuses a mirror should pass through in minutes. snapshot and resync copy whole tables
        // and may rightly take hours, so they are left out.
        alert: 'MirrorStuckInTransientStatus',
        severity: 'warning',
        expr: (c) =>
          `(${c.m('peerdb_mirror_status', 'status=~"setup|pausing|terminating|modifying"')} == 1)\n` +
          `  and on (${c.by}, instance, mirror)\n` +
          `(time() - ${c.m('peerdb_mirror_status_since_timestamp_seconds')} > ${c.seconds('after')})`,
        summary: () => 'Mirror {{ $labels.mirror }} stuck in {{ $labels.status }}',
        description: (c) => `Mirror {{ $labels.mirror }} entered status {{ $labels.status }} more than ${c.human('after')} ago and has not left it.`,
      },
      {
        alert: 'MirrorSlotLagHigh',
        severity: 'warning',
        for: true,
        expr: (c) => `${c.m('peerdb_mirror_slot_lag_bytes')} > ${c.number('bytes')}`,
        summary: () => 'Replication slot of mirror {{ $labels.mirror }} holds back {{ $value | humanize1024 }}B of WAL',
        description: (c) =>
          `The source slot of mirror {{ $labels.mirror }} has held more than ${bytes(c.number('bytes'))} of WAL for ${c.human('for')}: the source disk fills while the mirror does not consume. Check the mirror is running and its destination keeps up.`,
      },
      {
        // Silence is not a fault: a running mirror whose numbers stay still has nothing to sync. What
        // does stop while a CDC mirror runs is PeerDB's slot sampler (about once a minute per
        // mirror from its first CDC batch on): its samples growing old means PeerDB no longer sees
        // the slot, or its workers stopped.
        alert: 'MirrorSlotSamplesStopped',
        severity: 'warning',
        expr: (c) =>
          `(${c.m('peerdb_mirror_status', 'status="running"')} == 1)\n` +
          `  and on (${c.by}, instance, mirror)\n` +
          `(time() - ${c.m('peerdb_mirror_slot_lag_sample_timestamp_seconds')} > ${c.seconds('after')})`,
        summary: (c) => `Slot samples of running mirror {{ $labels.mirror }} stopped ${c.human('after')} ago or more`,
        description: (c) =>
          `PeerDB has recorded no slot-size sample for running mirror {{ $labels.mirror }} for more than ${c.human('after')}: its slot may be gone, or PeerDB's workers stopped. Its slot lag figures are that old.`,
      },
      {
        // PeerDB #4255: a mirror that hangs. Its source moves (the slot holds back ever more WAL)
        // while it does not (rows synced stay still): a quiet source moves neither, so stays silent.
        alert: 'MirrorHung',
        severity: 'critical',
        for: true,
        expr: (c) =>
          `(${c.m('peerdb_mirror_status', 'status="running"')} == 1)\n` +
          `  and on (${c.by}, instance, mirror)\n` +
          `(delta(${c.m('peerdb_mirror_slot_lag_bytes')}[${c.duration('window')}]) > ${c.number('bytes')})\n` +
          `  and on (${c.by}, instance, mirror)\n` +
          `(changes(${c.m('peerdb_mirror_rows_synced_total')}[${c.duration('window')}]) == 0)`,
        summary: () => 'Mirror {{ $labels.mirror }} is hung: its slot lag grows while it syncs no rows',
        description: (c) =>
          `Running mirror {{ $labels.mirror }} synced no rows while its source slot's lag grew by more than ${bytes(c.number('bytes'))} within ${c.human('window')}, for ${c.human('for')}: the source has changes the mirror does not take.`,
      },
      {
        alert: 'MirrorTableError',
        severity: 'warning',
        for: true,
        expr: (c) => `${c.m('peerdb_mirror_table_error')} == 1`,
        summary: () => 'Table {{ $labels.table }} of mirror {{ $labels.mirror }} has an error ({{ $labels.class }})',
        description: (c) =>
          `Every report of table {{ $labels.table }} of mirror {{ $labels.mirror }} has carried an error of class {{ $labels.class }} for ${c.human('for')}.`,
      },
      {
        // An initial load that stopped: partitions remain, and none finished within the window. A
        // table with nothing left to load has no unfinished partitions, so never fires.
        alert: 'MirrorTableLoadStalled',
        severity: 'warning',
        for: true,
        expr: (c) =>
          `(${c.m('peerdb_mirror_table_snapshot_partitions_synced')} < ${c.m('peerdb_mirror_table_snapshot_partitions')})\n` +
          `  and on (${c.by}, instance, mirror, table)\n` +
          `(changes(${c.m('peerdb_mirror_table_snapshot_partitions_synced')}[${c.duration('window')}]) == 0)`,
        summary: (c) => `Initial load of table {{ $labels.table }} of mirror {{ $labels.mirror }} made no progress for ${c.human('window')}`,
        description: (c) =>
          `The initial load of table {{ $labels.table }} of mirror {{ $labels.mirror }} has unfinished partitions and finished none within ${c.human('window')}, for ${c.human('for')}.`,
      },
      {
        alert: 'MirrorSlotWalAtRisk',
        severity: 'critical',
        for: true,
        expr: (c) => `${c.m('peerdb_mirror_slot_wal_status', 'wal_status=~"unreserved|lost"')} == 1`,
        summary: () => 'Replication slot of mirror {{ $labels.mirror }} is {{ $labels.wal_status }}',
        description: (c) =>
          `The source slot of mirror {{ $labels.mirror }} has been {{ $labels.wal_status }} for ${c.human('for')} by its latest sample: PostgreSQL may remove (unreserved) or has removed (lost) WAL the mirror still needs, and a lost slot means a resync.`,
      },
    ],
  },
  {
    // Every other alert needs the daemon's own series: these fire when they are gone.
    name: 'mirrorstate-targets',
    alerts: [
      {
        alert: 'MirrorstateTargetDown',
        severity: 'warning',
        for: true,
        expr: (c) => `${c.m('up')} == 0`,
        summary: () => 'mirrorstate {{ $labels.instance }} is down',
        description: (c) =>
          `Prometheus has failed to scrape {{ $labels.instance }} of job {{ $labels.job }} for ${c.human('for')}: its mirrors' alerts cannot fire (a shard's mirrors are missing altogether). Check the process, its /healthz, and the network between Prometheus and it.`,
      },
      {
        alert: 'MirrorstateAbsent',
        severity: 'critical',
        for: true,
        expr: (c) => `absent(${c.m('up')})`,
        summary: () => 'No mirrorstate target is scraped',
        description: (c) =>
          `Prometheus has found no target matching ${c.selector} for ${c.human('for')}: no mirror alert can fire. Check that mirrorstate runs and that Prometheus discovers it (ServiceMonitor, scrape config).`,
      },
      {
        // As kube-state-metrics' mixin does: the shard ordinals a job's replicas serve, counted
        // once each, against the total they were given.
        alert: 'MirrorstateShardsMissing',
        severity: 'critical',
        for: true,
        expr: (c) =>
          `max by (${c.by}) (${c.m('mirrorstate_total_shards')})\n` +
          `  -\n` +
          `count by (${c.by}) (count_values by (${c.by}) ("ordinal", ${c.m('mirrorstate_shard_ordinal')}))\n` +
          `  > 0`,
        summary: () => 'Metrics shards of {{ $labels.job }} are not served: {{ $value }} missing',
        description: (c) =>
          `For ${c.human('for')} the replicas of {{ $labels.job }} have served fewer distinct shard ordinals than their mirrorstate_total_shards: the mirrors of the missing shards are gone from /metrics and their alerts cannot fire. Check every replica runs and each has its own ordinal (MIRRORSTATE_METRICS_SHARD).`,
      },
      {
        alert: 'MirrorstateShardsMismatch',
        severity: 'critical',
        for: true,
        expr: (c) => `stdvar by (${c.by}) (${c.m('mirrorstate_total_shards')}) != 0`,
        summary: () => 'The replicas of {{ $labels.job }} disagree on the number of metrics shards',
        description: (c) =>
          `For ${c.human('for')} the replicas of {{ $labels.job }} have reported different mirrorstate_total_shards: some mirrors are exported twice and others not at all. Give every replica the same n (MIRRORSTATE_METRICS_SHARD=i/n, or MIRRORSTATE_METRICS_TOTAL_SHARDS with auto).`,
      },
    ],
  },
  {
    name: 'mirrorstate-daemon',
    alerts: [
      {
        alert: 'MirrorstateCatalogDown',
        severity: 'critical',
        for: true,
        expr: (c) => `${c.m('mirrorstate_catalog_up')} == 0`,
        summary: () => 'mirrorstate {{ $labels.instance }} cannot read its catalog',
        description: (c) =>
          `Scrapes of {{ $labels.instance }} have failed to read the catalog for ${c.human('for')}: per-mirror series are frozen at the last good snapshot. Check DATABASE_URL and /readyz.`,
      },
      {
        alert: 'MirrorstateSnapshotStale',
        severity: 'warning',
        expr: (c) => `time() - ${c.m('mirrorstate_snapshot_timestamp_seconds')} > ${c.seconds('age')}`,
        summary: () => 'mirrorstate {{ $labels.instance }} serves a snapshot {{ $value | humanizeDuration }} old',
        description: (c) => `The per-mirror series of {{ $labels.instance }} come from a catalog snapshot older than ${c.human('age')} (or none was ever read).`,
      },
      {
        // Several replicas report the same queue: take the largest count, not the sum.
        alert: 'MirrorstateQueueBacklog',
        severity: 'warning',
        for: true,
        expr: (c) =>
          `max by (${c.by}) (sum without (state) (${c.m('mirrorstate_queue_jobs', 'queue="mirrorstate-updates",state=~"created|retry"')})) > ${c.number('jobs')}`,
        summary: () => '{{ $value }} state updates are waiting in the queue',
        description: (c) =>
          `More than ${c.number('jobs').toLocaleString('en-US')} jobs have waited in mirrorstate-updates for ${c.human('for')}: the daemon is down, or slower than the producers. Consider MIRRORSTATE_CONCURRENCY or MIRRORSTATE_BATCH_SIZE.`,
      },
      {
        alert: 'MirrorstateDeadLetters',
        severity: 'warning',
        expr: (c) => `sum by (${c.by}) (increase(${c.m('mirrorstate_updates_total', 'result="rejected"')}[${c.duration('window')}])) > 0`,
        summary: () => 'Invalid state updates were dead-lettered',
        description: (c) =>
          `{{ $value | humanize }} updates were rejected in the last ${c.human('window')} and moved to mirrorstate-updates-dlq; each dead letter names the field at fault.`,
      },
    ],
  },
  {
    name: 'mirrorstate-peerdb-source',
    alerts: [
      {
        // Followers report 0 by design: only the replica that leads polls.
        alert: 'MirrorstatePeerdbDown',
        severity: 'critical',
        for: true,
        expr: (c) => `(${c.m('mirrorstate_peerdb_up')} == 0) and on (${c.by}, instance) (${c.m('mirrorstate_peerdb_leader')} == 1)`,
        summary: () => 'mirrorstate cannot read the PeerDB catalog',
        description: (c) =>
          `The PeerDB poller on {{ $labels.instance }} has failed every poll for ${c.human('for')}: PeerDB mirrors get no updates. Its log says why (PeerDB poll failed); check MIRRORSTATE_PEERDB_URL, the network and the role's grants.`,
      },
      {
        alert: 'MirrorstatePeerdbNoPoller',
        severity: 'critical',
        for: true,
        expr: (c) => `max by (${c.by}) (${c.m('mirrorstate_peerdb_leader')}) == 0`,
        summary: () => 'No mirrorstate replica polls PeerDB',
        description: (c) =>
          `Replicas of {{ $labels.job }} run the PeerDB source but none has held the leader lock for ${c.human('for')}: they cannot reach their own catalog database (the lock lives there). Check DATABASE_URL and /readyz.`,
      },
    ],
  },
];
