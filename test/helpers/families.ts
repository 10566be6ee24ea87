/**
 * Every metric family of the project's own (`peerdb_*` and `mirrorstate_*`) the daemon can serve,
 * read from the code that declares them: the dashboard, the alert rules and docs/metrics.md are
 * checked against this list.
 */
import { CATALOG_UP, createDaemonMetrics, SCRAPE_DURATION, SNAPSHOT_TIMESTAMP } from '../../src/metrics/daemon.js';
import { MIRROR_FAMILIES } from '../../src/metrics/families.js';

const registry = createDaemonMetrics({ peerdb: true }).registry;

/** The daemon's own families: those of its registry (PeerDB source on) and those rendered with the snapshot. */
export const DAEMON_FAMILIES: readonly string[] = [
  ...registry.getMetricsAsArray().map((m) => m.name).filter((n) => n.startsWith('mirrorstate_')),
  CATALOG_UP.name, SNAPSHOT_TIMESTAMP.name, SCRAPE_DURATION.name,
];

export const FAMILIES: readonly string[] = [...MIRROR_FAMILIES.map((f) => f.name), ...DAEMON_FAMILIES];
