/**
 * Catalog snapshots for /metrics: one catalog read shared by concurrent scrapes (single flight),
 * rendered through the per-mirror text cache, and the last good one kept for when the catalog is
 * unreachable.
 *
 * Reads follow the catalog's changes, not the scrapes (with `watchUrl`; see watch.ts). The daemon
 * LISTENs for the notification every write to `mirrors` sends and re-reads the changed mirrors
 * when told: at once, or, when the last read started less than a gap ago, at the end of the gap.
 * The gap is a quarter of the time between scrapes (the shortest of the last few), from
 * REFRESH_GAP_MIN_MS to REFRESH_GAP_MAX_MS: a catalog written without pause is read every 3.75 s
 * for a Prometheus scraping every 15 s, once a second for faster scrapers, never once per batch. A
 * read has a fixed cost (the feed's scan of every row header) and runs beside the batch writer,
 * so reading more often than scrapes can show buys nothing.
 * A scrape then asks the listening connection for one `select 1` (the barrier):
 *
 *   - no change reported: the cache is the catalog as of the barrier, exactly; the scrape hands it
 *     out and `mirrorstate_snapshot_timestamp_seconds` says the barrier's time;
 *   - changes reported, and the cache was current at most two gaps ago (STALE_SERVE_MS at least;
 *     it was read, or a barrier found it current, that recently): the scrape hands out the cache
 *     as it is, with that time, while the read for the changes runs or waits out its gap;
 *   - otherwise (an older cache, a failed read, no listening connection): the scrape reads the
 *     catalog itself, as every scrape did before, under the rules below.
 *
 * Changes are followed while the daemon is scraped (within FOLLOW_UNSCRAPED_MS): reading them
 * for nobody would cost the batch writer, beside which reads run, for nothing (docs/performance.md,
 * "Reads beside the batch writer").
 *
 * So a scrape of a quiet catalog costs a round trip, a catalog written a moment ago is read for
 * the scrape (or by the time it comes), and one written continuously is shown at most two gaps
 * behind (7.5 s at a 15 s scrape interval, 2 s for scrapes a few seconds apart), with the time it
 * shows. Two Prometheus servers scraping cost no more reads than one.
 *
 * Outage rule: a scrape whose catalog read fails, or does not finish within the scrape's budget,
 * is answered with the last good snapshot's per-mirror series (so dashboards do not blank) and
 * `mirrorstate_catalog_up 0`; `mirrorstate_snapshot_timestamp_seconds` keeps saying how old that
 * snapshot is. A read that outlives its scrape keeps running and serves the next scrape.
 *
 * Backoff rule: after a read failed because the connection did (a restart: SQLSTATE table in
 * db/sqlstate.ts), scrapes are answered from the last snapshot without touching the catalog until
 * the backoff (doubling from 250 ms to 5 s) has passed; then one read tries again. The catalog's
 * outage is logged once, by the Outage it is reported to.
 */
import type pg from 'pg';
import { sliceYielder } from '../async.js';
import type { Logger } from '../log.js';
import { inTransaction } from '../db/pool.js';
import { type Bucket, MirrorTextCache } from './textCache.js';
import { type FeedStatement, feedStatement, type MirrorChange, readFeedPosition, readMirrorFeed } from './feed.js';
import { mirrorRowColumns, type MirrorRow, readMirrorRows, readMirrorVersions } from './readMirrorRows.js';
import { MIRROR_FAMILIES, type MirrorFamily } from './families.js';
import { NO_SHARDING, type Shard } from './shard.js';
import { isConnectionLoss } from '../db/sqlstate.js';
import type { Outage } from '../db/outage.js';
import type { SessionLimits } from '../db/connection.js';
import { CatalogWatch } from './watch.js';
import { compressBuckets } from './gzip.js';
import { GzipFamilies } from './answer.js';

/**
 * Rendering yields to the event loop once a slice of RENDER_SLICE_MS has passed, checked every
 * RENDER_CHECK_MIRRORS mirrors: reads run beside the batch writer, and a batch that commits while
 * a read renders waits for the slice to end (docs/performance.md, "Render slices").
 */
export const RENDER_SLICE_MS = 2;
export const RENDER_CHECK_MIRRORS = 16;
export const READ_BACKOFF_FIRST_MS = 250;
export const READ_BACKOFF_MAX_MS = 5_000;
/** Bounds of the time from one read's start to the next's while changes keep coming (see above). */
export const REFRESH_GAP_MIN_MS = 1_000;
export const REFRESH_GAP_MAX_MS = 15_000;
/** Scrape intervals remembered for the gap: the shortest of them counts (a second scraper, a restart). */
export const SCRAPE_INTERVALS_KEPT = 4;
/**
 * Changes are followed while someone scrapes: a daemon not scraped for this long (Prometheus'
 * default interval is 1 min) stops reading on changes, and its next scrape reads for itself.
 */
export const FOLLOW_UNSCRAPED_MS = 5 * 60_000;
/** How far behind the catalog a scrape may always be answered without reading it: two gaps, at least this (see above). */
export const STALE_SERVE_MS = 2 * REFRESH_GAP_MIN_MS;
/** Longest a scrape waits on the barrier before it gives up on the listening connection. */
export const BARRIER_TIMEOUT_MS = 1_000;

export interface Snapshot {
  /**
   * In Unix seconds, the catalog state the per-mirror series show: when the read started, or a
   * later barrier that found nothing written since. Every change committed before it is in them.
   */
  takenAtSeconds: number;
  /** Time the catalog read took, in seconds. */
  readSeconds: number;
  /** The per-mirror text, in buckets (see textCache.ts). */
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
  /** Time this scrape spent on the catalog (the barrier, or the read it waited for), in seconds. */
  readSeconds: number;
}

export interface MirrorSnapshotsOptions {
  pool: pg.Pool;
  schema: string;
  logger: Logger;
  /** The mirrors this replica exports (default: all). */
  shard?: Shard;
  outage?: Outage;
  /** The catalog database to LISTEN on, for reads that follow its changes (see above); without it every scrape reads. */
  watchUrl?: string;
  /** Session limits of the listening connection. */
  watchLimits?: SessionLimits;
  /** The per-mirror families served (default: all; see selectFamilies): only their columns are read. */
  families?: readonly MirrorFamily[];
  /** REFRESH_GAP_MIN_MS and REFRESH_GAP_MAX_MS, for tests ([g, g]: a fixed gap of g). */
  refreshGapBoundsMs?: readonly [number, number];
}

export class MirrorSnapshots {
  /** While backing off after a connection loss: no read before this (performance.now()). */
  private retryAt = 0;
  private backoffMs = 0;
  private readonly cache: MirrorTextCache;
  /** The families served, and the select list that reads what they print. */
  readonly families: readonly MirrorFamily[];
  /** Each family's gzip pieces joined, by the reads ahead of the scrapes (see read) or by a scrape. */
  readonly gzipFamilies = new GzipFamilies();
  readonly columns: string;
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
  /** Catalog reads started, by scrapes or by changes. */
  reads = 0;
  private readonly watch: CatalogWatch | undefined;
  /** Changes reported (and listening starts), counted; the cache holds all up to `changesRead`. */
  private changes = 0;
  private changesRead = -1;
  private lastReadFailed = false;
  /** performance.now() at the start of the last read, for the gap between reads. */
  private lastReadStart = -Infinity;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the last scrape, for FOLLOW_UNSCRAPED_MS, and the last intervals between scrapes. */
  private lastScrapeAt = -Infinity;
  /** performance.now() of the last scrape that asked for gzip (see read). */
  private lastGzipScrapeAt = -Infinity;
  private readonly scrapeIntervals: number[] = [];
  private closed = false;

  /** The change feed's statement for this schema and shard, prepared once per connection by its name. */
  private readonly feedStatement: FeedStatement;

  constructor(private readonly options: MirrorSnapshotsOptions) {
    this.families = options.families ?? MIRROR_FAMILIES;
    this.columns = mirrorRowColumns(options.schema, this.families);
    this.cache = new MirrorTextCache(this.families);
    this.feedStatement = feedStatement(options.schema, options.shard ?? NO_SHARDING, this.columns);
    this.log = options.logger.child({ component: 'metrics' });
    if (options.watchUrl !== undefined) {
      this.watch = new CatalogWatch({
        url: options.watchUrl,
        limits: options.watchLimits,
        schema: options.schema,
        logger: options.logger,
        outage: options.outage,
        onChange: () => this.changed(false),
        // What changed while nobody listened was not reported: read now, scraped or not (at
        // start, so that the first scrape finds the cache warm).
        onListen: () => this.changed(true),
      });
    }
  }

  /** True while a catalog read runs (scrapes meanwhile are served from the cache, see above). */
  get reading(): boolean {
    return this.flight !== undefined;
  }

  /** True while the catalog's changes are heard (see watch.ts). */
  get listening(): boolean {
    return this.watch?.listening === true;
  }

  /** Starts listening for changes (with `watchUrl`); the first read follows, before any scrape asks. */
  start(): void {
    this.watch?.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refreshTimer);
    await this.watch?.close();
    await this.flight?.catch(() => undefined);
  }

  /**
   * The latest snapshot, from the cache when it is current (see above), else read now, waiting at
   * most `budgetMs`. `gzip`: the scrape asks for gzip, so reads compress ahead (see read).
   */
  async forScrape(budgetMs: number, gzip = false): Promise<ScrapeSnapshot> {
    const followed = this.following();
    const now = performance.now();
    if (gzip) this.lastGzipScrapeAt = now;
    if (this.lastScrapeAt > -Infinity) {
      this.scrapeIntervals.push(now - this.lastScrapeAt);
      if (this.scrapeIntervals.length > SCRAPE_INTERVALS_KEPT) this.scrapeIntervals.shift();
    }
    this.lastScrapeAt = now;
    const cached = await this.fromCache(budgetMs, followed);
    if (cached !== undefined) return cached;
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
      // The read's own outcome was noted when it settled (readShared).
      if (outcome instanceof Error) return { snapshot: this.last, catalogUp: false, readSeconds };
      return { snapshot: outcome, catalogUp: true, readSeconds: outcome.readSeconds };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The cache, if the barrier allows it to answer this scrape (see above). `followed`: changes
   * were being read as they came (see FOLLOW_UNSCRAPED_MS) before this scrape.
   */
  private async fromCache(budgetMs: number, followed: boolean): Promise<ScrapeSnapshot | undefined> {
    const last = this.last;
    if (this.watch?.listening !== true || last === undefined || this.lastReadFailed) return undefined;
    const askedAt = Date.now();
    const started = performance.now();
    try {
      await this.watch.barrier(Math.min(budgetMs, BARRIER_TIMEOUT_MS));
    } catch (err) {
      this.log.debug({ err }, 'barrier on the listening connection failed: reading the catalog for this scrape');
      return undefined;
    }
    const readSeconds = (performance.now() - started) / 1000;
    if (this.changes === this.changesRead && this.last === last) {
      // Nothing written since the cache was read: it is the catalog as of the barrier. The time is
      // kept, so an answer from this cache in an outage says how old it is.
      this.last = { ...last, takenAtSeconds: askedAt / 1000 };
    } else {
      // Changes came: the read for them runs, or waits out its gap, and the cache serves meanwhile
      // if it is recent enough. Changes nobody was reading (no scrape for a while) are read now.
      if (!followed) return undefined;
      this.scheduleRefresh();
      const reading = this.flight !== undefined || this.refreshTimer !== undefined;
      const staleServeMs = Math.max(STALE_SERVE_MS, 2 * this.refreshGapMs());
      if (!reading || askedAt - this.last!.takenAtSeconds * 1000 > staleServeMs) return undefined;
    }
    this.noteUp();
    return { snapshot: this.last, catalogUp: true, readSeconds };
  }

  /** A change was reported (or listening started): read it now, or once the gap since the last read has passed. */
  private changed(listening: boolean): void {
    this.changes++;
    this.scheduleRefresh(listening);
  }

  /** A quarter of the shortest recent interval between scrapes, within bounds (see above). */
  private refreshGapMs(): number {
    const [min, max] = this.options.refreshGapBoundsMs ?? [REFRESH_GAP_MIN_MS, REFRESH_GAP_MAX_MS];
    const interval = this.scrapeIntervals.length === 0 ? 0 : Math.min(...this.scrapeIntervals);
    return Math.min(max, Math.max(min, interval / 4));
  }

  private following(): boolean {
    return performance.now() - this.lastScrapeAt <= FOLLOW_UNSCRAPED_MS;
  }

  /** `always`: also when nobody scraped for FOLLOW_UNSCRAPED_MS. */
  private scheduleRefresh(always = false): void {
    // A read in flight schedules the next when it settles, if changes came meanwhile.
    if (this.closed || this.refreshTimer !== undefined || this.flight !== undefined) return;
    if (!always && !this.following()) return;
    // After the gap, and not before a backoff ends.
    const wait = Math.max(this.lastReadStart + this.refreshGapMs(), this.retryAt) - performance.now();
    if (wait > 0) {
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = undefined;
        this.refresh();
      }, wait);
      return;
    }
    this.refresh();
  }

  private refresh(): void {
    if (this.closed || this.changes === this.changesRead) return;
    // Its outcome is noted in readShared; no scrape waits on it.
    this.readShared().catch(() => undefined);
  }

  private readShared(): Promise<Snapshot> {
    if (this.flight === undefined) {
      const flight = this.read();
      this.flight = flight;
      // Settled: noted once (however many scrapes wait on it); the next scrape reads again, and
      // changes reported meanwhile are read in turn.
      const settled = (err?: unknown): void => {
        this.flight = undefined;
        if (err === undefined) this.noteUp();
        else {
          // Until a read succeeds, scrapes read for themselves. A read still running is no failure:
          // scrapes meanwhile are served from the cache under the rules above (a read of 100,000
          // tables runs a few hundred ms, and every scrape in it used to wait for it).
          this.lastReadFailed = true;
          this.noteDown(err instanceof Error ? err : new Error(String(err)));
        }
        if (this.watch !== undefined && this.changes !== this.changesRead) this.scheduleRefresh();
      };
      flight.then(() => settled(), (err: unknown) => settled(err ?? new Error('catalog read failed')));
    }
    return this.flight;
  }

  private async read(): Promise<Snapshot> {
    const shard = this.options.shard ?? NO_SHARDING;
    const takenAtSeconds = Date.now() / 1000;
    const started = performance.now();
    const changes = this.changes;
    this.reads++;
    this.lastReadStart = started;
    // Everything from one snapshot: a row written in between cannot pair an old version with new
    // values (or the reverse) and then stick in the cache. A warm cache reads the change feed since
    // the previous snapshot's horizon in one statement (see feed.ts); a cold one, or one
    // whose feed says rows left the table (a removed row leaves no version to find), reads every
    // version instead, in one transaction.
    const feedFrom = this.feedFrom;
    this.feedFrom = undefined; // until this read is applied in full
    const read = (feedFrom === undefined ? undefined : await this.readFeed(feedFrom)) ?? (await this.readFull(shard));
    const readSeconds = (performance.now() - started) / 1000;
    const yieldTo = sliceYielder(RENDER_SLICE_MS);
    const buckets = read.changes !== undefined
      ? await this.cache.patch(read.changes, yieldTo, RENDER_CHECK_MIRRORS)
      : await this.cache.update(read.rows, yieldTo, RENDER_CHECK_MIRRORS);
    // While gzip scrapes come, the rebuilt buckets are compressed and each family's pieces joined
    // here, in slices, before any scrape is answered from them: scrapes meanwhile hand out the
    // previous snapshot, whose pieces are all made and joined, so a gzip scrape compresses and
    // copies nothing (docs/performance.md, "Tables on /metrics").
    if (performance.now() - this.lastGzipScrapeAt <= FOLLOW_UNSCRAPED_MS) {
      await compressBuckets(buckets);
      await this.gzipFamilies.joinAll(buckets, this.families.length, yieldTo);
    }
    this.feedFrom = read.horizon;
    this.lastRendered = this.cache.rendered;
    this.lastReadKind = read.changes !== undefined ? 'feed' : 'full';
    const snapshot: Snapshot = { takenAtSeconds, readSeconds, buckets, mirrors: this.cache.size };
    this.last = snapshot;
    this.changesRead = changes;
    this.lastReadFailed = false;
    return snapshot;
  }

  /** The change feed, or undefined when the cache cannot take it (see read). */
  private async readFeed(from: string): Promise<CatalogRead | undefined> {
    const { horizon, removed, changes } = await readMirrorFeed(this.options.pool, this.feedStatement, from);
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
        stale.length === 0 ? [] : await readMirrorRows(client, schema, stale.length > versions.length / 2 ? undefined : stale, shard, this.columns);
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
