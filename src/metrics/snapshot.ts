/**
 * Catalog snapshots for /metrics: one catalog read shared by concurrent scrapes (single flight),
 * rendered through the per-mirror text cache, and the last good one kept for when the catalog is
 * unreachable.
 *
 * Outage rule: a scrape whose catalog read fails, or does not finish within the scrape's budget,
 * is answered with the last good snapshot's per-mirror series (so dashboards do not blank) and
 * `mirrorstate_catalog_up 0`; `mirrorstate_snapshot_timestamp_seconds` keeps saying how old that
 * snapshot is. A read that outlives its scrape keeps running and serves the next scrape.
 *
 * Backoff rule: after a read failed because the connection did (a restart: SQLSTATE table in
 * catalog/sql.ts), scrapes are answered from the last snapshot without touching the catalog until
 * the backoff (doubling from 250 ms to 5 s) has passed; then one read tries again. The catalog's
 * outage is logged once, by the Outage it is reported to.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from '../log.js';
import { inTransaction } from '../db.js';
import { type Bucket, MirrorTextCache } from './mirrors.js';
import {
  type MirrorChange, type MirrorRow, readFeedPosition, readMirrorFeed, readMirrorRows, readMirrorVersions,
} from './readMirrorRows.js';
import { NO_SHARDING, type Shard } from './shard.js';
import { isConnectionLoss } from '../catalog/sql.js';
import type { Outage } from '../outage.js';

/** Server-side bound on one catalog read; a scrape gives up waiting much earlier (its own timeout). */
export const SNAPSHOT_STATEMENT_TIMEOUT_MS = 30_000;
export const SNAPSHOT_CONNECT_TIMEOUT_MS = 5_000;
/** Mirrors rendered between two yields to the event loop, so a cold cache never blocks it for long. */
export const RENDER_CHUNK_MIRRORS = 250;
export const READ_BACKOFF_FIRST_MS = 250;
export const READ_BACKOFF_MAX_MS = 5_000;

export interface Snapshot {
  /** When the read started, in Unix seconds: the catalog state the per-mirror series show. */
  takenAtSeconds: number;
  /** Time the catalog read took, in seconds. */
  readSeconds: number;
  /** The per-mirror text, in buckets (see mirrors.ts). */
  buckets: Bucket[];
  /** How many mirrors the buckets hold. */
  mirrors: number;
}

/** What one catalog read found: the change feed's rows, or (changes undefined) the rows a full read rendered. */
interface CatalogRead {
  /** The read's snapshot horizon: where the next change feed starts. */
  horizon: string;
  changes: MirrorChange[] | undefined;
  rows: MirrorRow[];
}

export interface ScrapeSnapshot {
  /** Undefined until a first catalog read succeeded. */
  snapshot: Snapshot | undefined;
  catalogUp: boolean;
  /** Time this scrape spent on the catalog read (waiting for a shared one included), in seconds. */
  readSeconds: number;
}

/**
 * A pool of its own: scrapes never queue behind catalog writes for a connection, and the
 * statement timeout bounds a read server-side. Its connections stay open between scrapes
 * (node-pg closes idle ones after 10 s by default): Prometheus scrapes every 15 s to 1 min, and a
 * scrape that had to connect first would pay the connection and the feed statement's preparation
 * every time.
 */
export function createSnapshotPool(url: string, logger: Logger, outage?: Outage): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 2,
    idleTimeoutMillis: 0,
    application_name: 'mirrorstate-metrics',
    connectionTimeoutMillis: SNAPSHOT_CONNECT_TIMEOUT_MS,
    statement_timeout: SNAPSHOT_STATEMENT_TIMEOUT_MS,
  });
  pool.on('error', (err) => {
    if (!outage?.report(err)) logger.warn({ err }, 'idle metrics connection failed');
  });
  return pool;
}

export interface MirrorSnapshotsOptions {
  pool: pg.Pool;
  schema: string;
  logger: Logger;
  /** The mirrors this replica exports (default: all). */
  shard?: Shard;
  outage?: Outage;
}

export class MirrorSnapshots {
  /** While backing off after a connection loss: no read before this (performance.now()). */
  private retryAt = 0;
  private backoffMs = 0;
  private readonly cache = new MirrorTextCache();
  private flight: Promise<Snapshot> | undefined;
  private last: Snapshot | undefined;
  private catalogWasUp = true;
  /** Where the next read's change feed starts: the horizon of the last snapshot applied to the cache. */
  private feedFrom: string | undefined;
  private readonly log: Logger;
  /** How many mirrors the last read had to render anew (the others came from the cache). */
  lastRendered = 0;
  /** How the last read found what changed: the change feed, or every mirror's version. */
  lastReadKind: 'feed' | 'full' = 'full';

  constructor(private readonly options: MirrorSnapshotsOptions) {
    this.log = options.logger.child({ component: 'metrics' });
  }

  /** The latest snapshot, read now (or joining a read in flight), waiting at most `budgetMs`. */
  async forScrape(budgetMs: number): Promise<ScrapeSnapshot> {
    const started = performance.now();
    if (this.flight === undefined && started < this.retryAt) {
      return { snapshot: this.last, catalogUp: false, readSeconds: 0 };
    }
    const flight = this.readShared();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, budgetMs));
    });
    try {
      const settled = flight.then(
        (snapshot) => snapshot,
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      );
      const outcome = await Promise.race([settled, timedOut]);
      const readSeconds = (performance.now() - started) / 1000;
      if (outcome === 'timeout') {
        this.noteDown(new Error(`catalog read did not finish within the scrape budget of ${budgetMs} ms`), true);
        return { snapshot: this.last, catalogUp: false, readSeconds };
      }
      if (outcome instanceof Error) {
        this.noteDown(outcome);
        return { snapshot: this.last, catalogUp: false, readSeconds };
      }
      this.noteUp();
      return { snapshot: outcome, catalogUp: true, readSeconds: outcome.readSeconds };
    } finally {
      clearTimeout(timer);
    }
  }

  private readShared(): Promise<Snapshot> {
    if (this.flight === undefined) {
      const flight = this.read();
      this.flight = flight;
      // Settled: the next scrape reads again. A rejection is handled by each waiting scrape.
      flight.then(
        () => (this.flight = undefined),
        () => (this.flight = undefined),
      );
    }
    return this.flight;
  }

  private async read(): Promise<Snapshot> {
    const shard = this.options.shard ?? NO_SHARDING;
    const takenAtSeconds = Date.now() / 1000;
    const started = performance.now();
    // Everything from one snapshot: a row written in between cannot pair an old version with new
    // values (or the reverse) and then stick in the cache. A warm cache reads the change feed since
    // the previous snapshot's horizon in one statement (see readMirrorRows.ts); a cold one, or one
    // whose feed says rows left the table (a removed row leaves no version to find), reads every
    // version instead, in one transaction.
    const feedFrom = this.feedFrom;
    this.feedFrom = undefined; // until this read is applied in full
    const read = (feedFrom === undefined ? undefined : await this.readFeed(feedFrom, shard)) ?? (await this.readFull(shard));
    const readSeconds = (performance.now() - started) / 1000;
    const buckets = read.changes !== undefined
      ? await this.cache.patch(read.changes, () => yieldToEventLoop(), RENDER_CHUNK_MIRRORS)
      : await this.cache.update(read.rows, () => yieldToEventLoop(), RENDER_CHUNK_MIRRORS);
    this.feedFrom = read.horizon;
    this.lastRendered = this.cache.rendered;
    this.lastReadKind = read.changes !== undefined ? 'feed' : 'full';
    const snapshot: Snapshot = { takenAtSeconds, readSeconds, buckets, mirrors: this.cache.size };
    this.last = snapshot;
    return snapshot;
  }

  /** The change feed, or undefined when the cache cannot take it (see read). */
  private async readFeed(from: string, shard: Shard): Promise<CatalogRead | undefined> {
    const { horizon, removed, changes } = await readMirrorFeed(this.options.pool, this.options.schema, from, shard);
    if (removed) return undefined;
    let live = this.cache.size;
    for (const c of changes) {
      if (c.dropped) live -= this.cache.has(c.mirror) ? 1 : 0;
      else live += this.cache.has(c.mirror) ? 0 : 1;
    }
    // A fleet grown or shrunk fourfold is re-bucketed by a full read (see MirrorTextCache.stale).
    return this.cache.fits(live) ? { horizon, changes, rows: [] } : undefined;
  }

  /** Every live mirror's version, and the rows the cache lacks, from one REPEATABLE READ snapshot. */
  private readFull(shard: Shard): Promise<CatalogRead> {
    const { pool, schema } = this.options;
    return inTransaction(pool, 'begin isolation level repeatable read read only', async (client) => {
      const horizon = await readFeedPosition(client);
      const versions = await readMirrorVersions(client, schema, shard);
      const stale = this.cache.stale(versions);
      // A cold cache reads every row at once rather than naming them all in an array.
      const rows: MirrorRow[] =
        stale.length === 0 ? [] : await readMirrorRows(client, schema, stale.length > versions.length / 2 ? undefined : stale, shard);
      return { horizon, changes: undefined, rows };
    });
  }

  /** `slow`: the read outlived the scrape's budget, which says nothing about the connection. */
  private noteDown(err: Error, slow = false): void {
    const lost = !slow && isConnectionLoss(err);
    if (lost) {
      this.backoffMs = Math.min(READ_BACKOFF_MAX_MS, Math.max(READ_BACKOFF_FIRST_MS, this.backoffMs * 2));
      this.retryAt = performance.now() + this.backoffMs;
    }
    const reported = lost && (this.options.outage?.report(err) ?? false);
    if (this.catalogWasUp && !reported) {
      this.log.warn({ err, servingSnapshotOf: this.last?.takenAtSeconds }, 'catalog read for /metrics failed: serving the last good snapshot');
    } else this.log.debug({ err }, 'catalog read for /metrics failed again');
    this.catalogWasUp = false;
  }

  private noteUp(): void {
    this.backoffMs = 0;
    this.retryAt = 0;
    if (!this.catalogWasUp && !this.options.outage) this.log.info('catalog read for /metrics succeeded again');
    this.catalogWasUp = true;
  }
}
