/**
 * A realistic fleet of about 30 mirrors in every kind of state, each with a short history (setup,
 * snapshot, running, …), as state updates (docs/message.md) timed relative to `nowMs`. Used by the
 * status-page browser test and by `docs/screenshots.ts`. Deterministic: the same fleet every time.
 */

type Update = Record<string, unknown>;

interface MirrorSpec {
  name: string;
  /** Statuses in order, the last one current; each lasts `stepMinutes`, the last until now-ish. */
  path: string[];
  flowType?: 'cdc' | 'qrep' | 'xmin';
  source: string;
  destination: string;
  error?: { class: string; message: string };
  dropped?: boolean;
}

const SOURCES = ['pg_orders', 'pg_billing', 'pg_catalog_eu', 'pg_users', 'mysql_legacy'];
const DESTINATIONS = ['snowflake_prod', 'bigquery_analytics', 'clickhouse_events', 's3_lake'];

const RUNNING = ['setup', 'snapshot', 'running'];
const SPECS: MirrorSpec[] = [
  ...['orders', 'order_items', 'payments', 'refunds', 'invoices', 'customers', 'addresses', 'carts', 'shipments',
    'inventory', 'products', 'prices', 'reviews', 'sessions', 'audit_log', 'subscriptions', 'coupons'].map((t, i) => ({
    name: `${t}_cdc`, path: RUNNING, flowType: 'cdc' as const,
    source: SOURCES[i % SOURCES.length] as string, destination: DESTINATIONS[i % DESTINATIONS.length] as string,
  })),
  { name: 'eu/customers_gdpr', path: [...RUNNING, 'paused', 'running'], flowType: 'cdc', source: 'pg_catalog_eu', destination: 'snowflake_prod' },
  { name: 'ledger_entries_cdc', path: [...RUNNING, 'pausing', 'paused'], flowType: 'cdc', source: 'pg_billing', destination: 'bigquery_analytics' },
  { name: 'clickstream_cdc', path: [...RUNNING, 'pausing'], flowType: 'cdc', source: 'pg_users', destination: 'clickhouse_events' },
  { name: 'warehouse_stock_cdc', path: [...RUNNING, 'paused'], flowType: 'cdc', source: 'mysql_legacy', destination: 's3_lake' },
  { name: 'search_index_cdc', path: ['setup', 'snapshot'], flowType: 'cdc', source: 'pg_orders', destination: 'clickhouse_events' },
  { name: 'notifications_cdc', path: ['setup'], flowType: 'cdc', source: 'pg_users', destination: 'snowflake_prod' },
  { name: 'loyalty_points_cdc', path: [...RUNNING, 'resync'], flowType: 'cdc', source: 'pg_billing', destination: 'snowflake_prod' },
  { name: 'partner_feeds_cdc', path: [...RUNNING, 'modifying'], flowType: 'cdc', source: 'pg_catalog_eu', destination: 's3_lake' },
  {
    name: 'fraud_signals_cdc', path: [...RUNNING, 'failed'], flowType: 'cdc', source: 'pg_billing', destination: 'bigquery_analytics',
    error: { class: 'slot_invalidated', message: 'replication slot "peerflow_slot_fraud_signals" has been invalidated because it exceeded the maximum reserved size' },
  },
  {
    name: 'crm_contacts_cdc', path: [...RUNNING, 'failed'], flowType: 'cdc', source: 'mysql_legacy', destination: 'snowflake_prod',
    error: { class: 'auth_failed', message: 'password authentication failed for user "peerdb_repl"' },
  },
  { name: 'backfill_2023_orders', path: ['setup', 'snapshot', 'completed'], flowType: 'qrep', source: 'pg_orders', destination: 's3_lake' },
  { name: 'daily_rollup_xmin', path: ['setup', 'running'], flowType: 'xmin', source: 'pg_orders', destination: 'bigquery_analytics' },
  { name: 'legacy_users_cdc', path: [...RUNNING, 'terminating', 'terminated'], flowType: 'cdc', source: 'mysql_legacy', destination: 'snowflake_prod', dropped: true },
];

/** A small deterministic generator, so the demo looks the same in every screenshot. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

export function demoFleet(nowMs: number): Update[] {
  const rand = random(42);
  const updates: Update[] = [];
  for (const spec of SPECS) {
    // Histories within the journal's default retention (7 days), so every page shows its journal.
    const startedMs = nowMs - (1 + rand() * 5) * 86_400_000;
    const stepMs = (nowMs - 3_600_000 - startedMs) / spec.path.length;
    const workflowId = `${spec.name.replace(/[^a-z0-9]+/g, '-')}-flow`;
    const runId = `run-${Math.floor(rand() * 1e8).toString(16)}`;
    let rows = 0;
    const update = (status: string, atMs: number, last: boolean): Update => {
      if (status === 'running' || status === 'snapshot' || status === 'completed') rows += Math.floor(rand() * 8e6);
      const cdcRunning = spec.flowType === 'cdc' && status === 'running';
      return {
        mirror: spec.name, status, observedAt: new Date(atMs).toISOString(), workflowId, runId,
        flowType: spec.flowType, source: spec.source, destination: spec.destination,
        ...(rows > 0 ? { rowsSynced: rows } : {}),
        ...(cdcRunning ? { lagSeconds: Number((rand() < 0.85 ? rand() * 8 : 60 + rand() * 900).toFixed(1)) } : {}),
        ...(cdcRunning && spec.source.startsWith('pg_') ? { slotLagBytes: Math.floor(rand() < 0.8 ? rand() * 5e7 : rand() * 6e9) } : {}),
        ...(last && spec.error ? { error: spec.error } : {}),
        ...(last && spec.dropped ? { dropped: true } : {}),
      };
    };
    spec.path.forEach((status, i) => updates.push(update(status, startedMs + i * stepMs, i === spec.path.length - 1 && !isLive(status))));
    // Producers report a live mirror every few minutes: the newest a few seconds ago.
    const current = spec.path[spec.path.length - 1] as string;
    if (isLive(current)) {
      for (let k = 4; k >= 0; k--) updates.push(update(current, nowMs - k * 600_000 - 2_000 - rand() * 25_000, k === 0));
    }
  }
  return updates;
}

/** Statuses a producer keeps reporting; the others are where a mirror stops. */
function isLive(status: string): boolean {
  return ['running', 'snapshot', 'setup', 'resync', 'modifying', 'pausing'].includes(status);
}
