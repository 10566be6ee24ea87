/** Shared by the metrics tests: catalog rows written directly, scrapes over HTTP. */
import type pg from 'pg';
import { HttpServer } from '../../src/http/server.js';
import { createLogger } from '../../src/log.js';
import { createDaemonMetrics } from '../../src/metrics/daemon.js';
import type { MirrorFamily } from '../../src/metrics/families.js';
import { registerMetricsRoute } from '../../src/metrics/route.js';
import { MirrorSnapshots } from '../../src/metrics/snapshot.js';
import { createSnapshotPool } from '../../src/metrics/snapshotPool.js';

export interface MirrorFixture {
  mirror: string;
  status: string;
  statusSince: string;
  observedAt: string;
  seq?: number;
  workflowId?: string | null;
  flowType?: string | null;
  source?: string | null;
  destination?: string | null;
  rowsSynced?: number | null;
  lagSeconds?: number | null;
  slotLagBytes?: number | null;
  errorClass?: string | null;
  errorMessage?: string | null;
  dropped?: boolean;
  transitionsTotal?: number;
}

/** Writes a mirror's current row the way the batch writer leaves it (insert or replace). */
export async function putMirror(pool: pg.Pool, schema: string, f: MirrorFixture): Promise<void> {
  await pool.query(
    `insert into "${schema}".mirrors (mirror, status, status_since, observed_at, seq, workflow_id, flow_type, source_peer,
       destination_peer, rows_synced, lag_seconds, error_class, error_message, dropped_at, transitions_total, slot_lag_bytes)
     values ($1, $2, $3::timestamptz, $4::timestamptz, $5, $6, $7, $8, $9, $10, $11, $12, $13,
       case when $14::boolean then $4::timestamptz end, $15, $16)
     on conflict (mirror) do update set status = excluded.status, status_since = excluded.status_since,
       observed_at = excluded.observed_at, seq = excluded.seq, workflow_id = excluded.workflow_id,
       flow_type = excluded.flow_type, source_peer = excluded.source_peer, destination_peer = excluded.destination_peer,
       rows_synced = excluded.rows_synced, lag_seconds = excluded.lag_seconds, error_class = excluded.error_class,
       error_message = excluded.error_message, dropped_at = excluded.dropped_at,
       transitions_total = excluded.transitions_total, slot_lag_bytes = excluded.slot_lag_bytes, updated_at = clock_timestamp()`,
    [
      f.mirror, f.status, f.statusSince, f.observedAt, f.seq ?? 0, f.workflowId ?? null, f.flowType ?? null,
      f.source ?? null, f.destination ?? null, f.rowsSynced ?? null, f.lagSeconds ?? null, f.errorClass ?? null,
      f.errorMessage ?? null, f.dropped ?? false, f.transitionsTotal ?? 1, f.slotLagBytes ?? null,
    ],
  );
}

export interface Scrape {
  status: number;
  contentType: string;
  text: string;
}

export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`, { headers });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
}

/** The exposition from the first `# HELP peerdb_` line on: the per-mirror families. */
export function mirrorPart(text: string): string {
  const start = text.indexOf('# HELP peerdb_');
  return start < 0 ? '' : byMirror(text.slice(start));
}

/**
 * Within each family, the series in mirror-name order. /metrics streams them in its cache's bucket
 * order (metrics/mirrors.ts), which the formats leave free; a stable sort on the mirror label keeps
 * each mirror's own lines (the 12 statuses) in the order they were written, so a comparison with
 * the expected text still checks every line, the family grouping and the order within a mirror.
 */
function byMirror(text: string): string {
  const lines = text.split('\n');
  const mirrorOf = (line: string) => /mirror="((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? '';
  const out: string[] = [];
  let run: string[] = [];
  const flush = () => {
    out.push(...run.sort((a, b) => Buffer.compare(Buffer.from(mirrorOf(a)), Buffer.from(mirrorOf(b)))));
    run = [];
  };
  for (const line of lines) {
    if (line.startsWith('#') || line === '') {
      flush();
      out.push(line);
    } else run.push(line);
  }
  flush();
  return out.join('\n');
}

/** A sample's value by its exact series text (`name{labels}`), or undefined when absent. */
export function sample(text: string, series: string): string | undefined {
  const prefix = `${series} `;
  const found = text.split('\n').find((l) => l.startsWith(prefix));
  return found?.slice(prefix.length);
}

/** A /metrics route over a snapshot pool of its own, as the daemon serves it but without a change
 * watch (each scrape reads the catalog, or the change feed once warm). */
export interface MetricsServer {
  url: string;
  pool: pg.Pool;
  snapshots: MirrorSnapshots;
  stop(): Promise<void>;
}

export async function startMetricsServer(databaseUrl: string, options: { families?: readonly MirrorFamily[] } = {}): Promise<MetricsServer> {
  const logger = createLogger('silent');
  const pool = createSnapshotPool(databaseUrl, logger);
  const snapshots = new MirrorSnapshots({ pool, schema: 'mirrorstate', logger, ...options });
  const http = new HttpServer(logger);
  registerMetricsRoute(http, { registry: createDaemonMetrics().registry, snapshots });
  const { port } = await http.start(0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`, pool, snapshots,
    async stop() {
      await http.stop();
      await snapshots.close();
      await pool.end();
    },
  };
}
