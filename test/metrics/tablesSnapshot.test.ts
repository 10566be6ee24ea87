/**
 * One snapshot for a mirror and its tables on /metrics (docs/tables.md): while a writer commits
 * batches through the batch writer in which each mirror's rowsSynced is its tables' sum (and its
 * table count follows the version), every scrape, warm (the change feed) or cold (a full read),
 * must show each mirror with its own commit's tables. The check counts violations over a fixed
 * number of scrapes and writes, not over a time window, so a loaded machine slows it but cannot
 * make it pass or fail differently. The same check on a reader of two statements (the control,
 * with a commit between them) fails, so the check can fail.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { MirrorSnapshots } from '../../src/metrics/snapshot.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { bucketText, scrapeNaive } from '../helpers/readMirrorNaive.js';
import { migrateCatalog, SCHEMA, write } from '../reads/support.js';
import { type MetricsServer, scrape, startMetricsServer } from './fixtures.js';

const MIRRORS = ['snap_a', 'snap "b"', 'snap_c/δ', 'snap_d', 'snap_e', 'snap_f'];
/** Scrapes of each kind, and the writes that must at least have committed while they ran. */
const WARM_SCRAPES = 300;
const COLD_SCRAPES = 60;
const MIN_WRITES = 60;
const CONTROL_SCRAPES = 20;

let db: TestDatabase;
let server: MetricsServer;
let snapshotPool: pg.Pool;
let snapshots: MirrorSnapshots;
let url: string;
const logger = createLogger('silent');

let version = 0;
/**
 * One batch, one transaction: version v gives every mirror 1 + v % 5 tables of v rows each and a
 * rowsSynced of their sum, so a mirror and its tables agree only when they come from one commit.
 */
async function writeVersion(): Promise<void> {
  const v = ++version;
  const count = 1 + (v % 5);
  const observedAt = new Date(Date.parse('2026-12-05T10:00:00Z') + v * 1000).toISOString();
  await write(db.pool, MIRRORS.map((mirror) => ({
    mirror, status: 'snapshot', observedAt, rowsSynced: v * count,
    tables: Array.from({ length: count }, (_, i) => ({ table: `public.t${i}`, rowsSynced: v })),
  })));
}

const escaped = (mirror: string) => mirror.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

/**
 * Per mirror, what the scrape shows of it disagreeing with one commit, or nothing; and the version
 * each mirror showed (its tables' rows).
 */
function check(text: string): { problems: string[]; versions: number[] } {
  const problems: string[] = [];
  const versions: number[] = [];
  for (const mirror of MIRRORS) {
    const m = `mirror="${escaped(mirror)}"`;
    const lines = text.split('\n');
    const valueOf = (line: string) => Number(line.slice(line.lastIndexOf(' ') + 1));
    const value = (series: string) => {
      const line = lines.find((l) => l.startsWith(`${series} `));
      return line === undefined ? NaN : valueOf(line);
    };
    const rows = value(`peerdb_mirror_rows_synced_total{${m}}`);
    const count = value(`peerdb_mirror_tables{${m}}`);
    const tableRows = lines.filter((l) => l.startsWith(`peerdb_mirror_table_rows_synced_total{${m},`)).map(valueOf);
    const v = tableRows[0] ?? NaN;
    versions.push(v);
    const ok = tableRows.length === count && count === 1 + (v % 5) && tableRows.every((r) => r === v) && rows === v * count;
    if (!ok) problems.push(`${mirror}: rowsSynced ${rows}, tables ${count}, table rows [${tableRows.join(',')}]`);
  }
  return { problems, versions };
}

interface Tally {
  scrapes: number;
  violations: number;
  examples: string[];
  /** Distinct versions seen: the scrapes did run while commits landed. */
  versionsSeen: Set<number>;
}

function tally(): Tally {
  return { scrapes: 0, violations: 0, examples: [], versionsSeen: new Set() };
}

function count(t: Tally, text: string): void {
  const { problems, versions } = check(text);
  t.scrapes++;
  for (const v of versions) t.versionsSeen.add(v);
  if (problems.length > 0) t.violations++;
  if (t.examples.length < 3) t.examples.push(...problems.slice(0, 3 - t.examples.length));
}

/** Scrapes with `read` while the writer commits, until `scrapes` scrapes and MIN_WRITES writes have both been made meanwhile. */
async function underWrites(scrapes: number, read: () => Promise<string>): Promise<{ t: Tally; writes: number }> {
  const t = tally();
  const before = version;
  let reading = true;
  const writer = (async () => {
    while (reading) await writeVersion();
  })();
  try {
    while (t.scrapes < scrapes || version - before < MIN_WRITES) count(t, await read());
  } finally {
    reading = false;
    await writer;
  }
  return { t, writes: version - before };
}

beforeAll(async () => {
  db = await createTestDatabase('metrics_tables_snapshot');
  await migrateCatalog(db.pool);
  await writeVersion();
  // No change watch: every scrape reads the catalog, the change feed once the cache is warm.
  server = await startMetricsServer(db.url);
  ({ url, snapshots, pool: snapshotPool } = server);
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('a mirror and its tables on one scrape', () => {
  it('come from one commit on every warm scrape (the change feed)', async () => {
    await scrape(url); // warm
    const { t, writes } = await underWrites(WARM_SCRAPES, async () => (await scrape(url)).text);
    console.log(`warm: ${t.scrapes} scrapes over ${writes} commits, ${t.versionsSeen.size} versions seen, ${t.violations} skewed`);
    expect(snapshots.lastReadKind).toBe('feed');
    expect(t.examples).toEqual([]);
    expect(t.violations).toBe(0);
    expect(t.versionsSeen.size).toBeGreaterThan(10);
  });

  it('come from one commit on every cold scrape (a full read)', async () => {
    const { t, writes } = await underWrites(COLD_SCRAPES, async () => {
      const cold = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger });
      try {
        const { snapshot } = await cold.forScrape(60_000);
        expect(cold.lastReadKind).toBe('full');
        return bucketText(snapshot!.buckets);
      } finally {
        await cold.close();
      }
    });
    console.log(`cold: ${t.scrapes} scrapes over ${writes} commits, ${t.versionsSeen.size} versions seen, ${t.violations} skewed`);
    expect(t.examples).toEqual([]);
    expect(t.violations).toBe(0);
    expect(t.versionsSeen.size).toBeGreaterThan(5);
  });

  it('the control: a reader of two statements with a commit between them is caught every time', async () => {
    const t = tally();
    while (t.scrapes < CONTROL_SCRAPES) count(t, await scrapeNaive(db.pool, SCHEMA, writeVersion));
    expect(t.violations).toBe(CONTROL_SCRAPES);
  });
});
