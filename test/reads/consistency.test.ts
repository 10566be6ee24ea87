/**
 * No read skew: while a writer publishes updates through the real queue to a running daemon, and
 * trimmers (this process in a tight loop, and the daemon on its own schedule) delete journal rows,
 * readers hammer GET /api/v1/mirrors/{mirror}?events=1000. Every answer's journal metadata must
 * describe exactly its events. The same load against a naive reader (separate READ COMMITTED
 * statements) must find skew, which proves the check can fail.
 */
import http from 'node:http';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMirrorNaive } from '../helpers/readMirrorNaive.js';
import type { MirrorDetail } from '../../src/catalog/views.js';
import { trim } from '../../src/catalog/trim.js';
import { createLogger } from '../../src/log.js';
import { createBoss, UPDATES_QUEUE } from '../../src/queue/boss.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { invariantViolations, SCHEMA, skew } from './support.js';

const MIRRORS = ['skew_a', 'skew_b', 'skew "c"/δ', 'skew d 🚀', 'skew_e', 'skew_f'];
const READERS = 8;
/** Reads go on until this many answers or the window closes, whichever comes first. */
const TARGET_READS = 3000;
const SNAPSHOT_WINDOW_MS = 15_000;
const NAIVE_WINDOW_MS = 4000;
/** The machine is shared (2 cores, several suites at once): the floor is what any run must reach. */
const MIN_SNAPSHOT_READS = 500;

let db: TestDatabase;
let daemon: DaemonProcess | undefined;
let producer: PgBoss | undefined;

/** Load that runs until stopped: a writer through the queue and a trimmer in a tight loop. */
class Load {
  private running = true;
  published = 0;
  trimmedRows = 0;
  trims = 0;
  errors: string[] = [];
  private readonly done: Promise<unknown>;

  constructor(boss: PgBoss) {
    this.done = Promise.all([this.writer(boss), this.trimmer()]);
  }

  private async writer(boss: PgBoss) {
    let seq = 0;
    while (this.running) {
      const updates = MIRRORS.flatMap((mirror) =>
        Array.from({ length: 3 }, () => {
          // Spread over the last 5 s: some updates are stale, and some are already past the age limit.
          const ms = Date.now() - Math.floor(Math.random() * 5000);
          const observedAt = `${new Date(ms).toISOString().slice(0, -1)}${String(Math.floor(Math.random() * 1000)).padStart(3, '0')}Z`;
          return { mirror, status: Math.random() < 0.5 ? 'running' : 'paused', observedAt, seq: seq++ };
        }));
      try {
        // The raw message of docs/message.md, straight into the queue.
        await boss.insert(UPDATES_QUEUE, [{ data: { updates } }]);
        this.published += updates.length;
      } catch (err) {
        this.errors.push(`publish: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private async trimmer() {
    while (this.running) {
      try {
        const r = await trim(db.pool, SCHEMA, { journalMaxAgeMs: 3000, journalMaxPerMirror: 4, transitionsMaxAgeMs: 0, chunkMirrors: 3 });
        this.trims++;
        this.trimmedRows += r.journalByAge + r.journalByCount;
      } catch (err) {
        this.errors.push(`trim: ${(err as Error).message}`);
      }
    }
  }

  async stop() {
    this.running = false;
    await this.done;
  }
}

interface ReadTally {
  reads: number;
  skewed: number;
  /** Skewed answers showing fewer or newer events than their metadata: rows a trim removed in between. */
  skewedByTrim: number;
  nonEmpty: number;
  examples: string[];
}

/** READERS loops calling `read` on random mirrors until `target` reads or `windowMs`; tallies skew. */
async function hammer(windowMs: number, target: number, read: (mirror: string) => Promise<MirrorDetail>): Promise<ReadTally> {
  const tally: ReadTally = { reads: 0, skewed: 0, skewedByTrim: 0, nonEmpty: 0, examples: [] };
  const deadline = Date.now() + windowMs;
  await Promise.all(
    Array.from({ length: READERS }, async () => {
      while (Date.now() < deadline && tally.reads < target) {
        const mirror = MIRRORS[Math.floor(Math.random() * MIRRORS.length)] as string;
        const detail = await read(mirror);
        tally.reads++;
        if (detail.journal.events.length > 0) tally.nonEmpty++;
        const problem = skew(detail);
        if (problem) {
          tally.skewed++;
          const { length, oldestAt, events } = detail.journal;
          const oldestEvent = events.reduce<string | null>((min, e) => (min === null || e.observedAt < min ? e.observedAt : min), null);
          if (events.length < length || (oldestAt !== null && (oldestEvent === null || oldestEvent > oldestAt))) tally.skewedByTrim++;
          if (tally.examples.length < 3) tally.examples.push(`${mirror}: ${problem}`);
        }
      }
    }),
  );
  return tally;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: READERS });

function readOverHttp(mirror: string): Promise<MirrorDetail> {
  const url = `${daemon?.url}/api/v1/mirrors/${encodeURIComponent(mirror)}?events=1000`;
  return new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(JSON.parse(body) as MirrorDetail);
        else reject(new Error(`GET ${url}: ${res.statusCode} ${body}`));
      });
    }).on('error', reject);
  });
}

async function trimmedTotal(): Promise<number> {
  const text = await (await fetch(`${daemon?.url}/metrics`)).text();
  const match = /^mirrorstate_journal_trimmed_total (\S+)$/m.exec(text);
  return match ? Number(match[1]) : NaN;
}

beforeAll(async () => {
  db = await createTestDatabase('reads_skew');
  daemon = await startDaemon({
    databaseUrl: db.url,
    // The daemon trims on its own schedule too, with tighter limits than this file's loop.
    env: { MIRRORSTATE_JOURNAL_MAX_PER_MIRROR: '2', MIRRORSTATE_JOURNAL_MAX_AGE: '2s', MIRRORSTATE_TRIM_INTERVAL: '1s' },
  });
  producer = createBoss({ connectionString: db.url, schema: 'pgboss', max: 2, logger: createLogger('silent'), worker: false });
  await producer.start();
});

afterAll(async () => {
  agent.destroy();
  await producer?.stop({ graceful: false, timeout: 1000 }).catch(() => undefined);
  await daemon?.stop();
  await db?.drop();
});

describe('reads under concurrent trims', () => {
  it('never shows skew through the API, while the naive reader does', async () => {
    const boss = producer as PgBoss;
    const load = new Load(boss);
    try {
      await waitFor('every mirror to exist', async () => {
        const { rows } = await db.pool.query(`select count(*)::int as n from ${SCHEMA}.mirrors`);
        return rows[0].n === MIRRORS.length;
      });

      const trimmedBefore = load.trimmedRows;
      const snapshot = await hammer(SNAPSHOT_WINDOW_MS, TARGET_READS, readOverHttp);
      const trimmedDuringSnapshot = load.trimmedRows - trimmedBefore;

      const naiveBefore = load.trimmedRows;
      const naive = await hammer(NAIVE_WINDOW_MS, TARGET_READS, async (mirror) => {
        const detail = await readMirrorNaive(db.pool, SCHEMA, mirror, { events: 1000, pauseMs: 1 });
        if (!detail) throw new Error(`naive read found no ${mirror}`);
        return detail;
      });
      const trimmedDuringNaive = load.trimmedRows - naiveBefore;

      console.log(
        `snapshot reads over HTTP: ${snapshot.reads} (${snapshot.nonEmpty} with events), skewed ${snapshot.skewed}; ` +
          `journal rows trimmed meanwhile by the test loop: ${trimmedDuringSnapshot}\n` +
          `naive reads: ${naive.reads} (${naive.nonEmpty} with events), skewed ${naive.skewed} (${naive.skewedByTrim} with rows missing), e.g. ${JSON.stringify(naive.examples)}; ` +
          `trimmed meanwhile: ${trimmedDuringNaive}\n` +
          `load: ${load.published} updates published, ${load.trims} trim runs`,
      );
      expect(snapshot.examples).toEqual([]);
      expect(snapshot.skewed).toBe(0);
      expect(snapshot.reads).toBeGreaterThanOrEqual(MIN_SNAPSHOT_READS);
      expect(snapshot.nonEmpty).toBeGreaterThan(snapshot.reads / 2);
      expect(trimmedDuringSnapshot).toBeGreaterThan(100);
      // The control: the same check on the naive reader fails, so the check above can fail.
      expect(trimmedDuringNaive).toBeGreaterThan(0);
      expect(naive.skewed).toBeGreaterThan(0);
      expect(naive.skewedByTrim).toBeGreaterThan(0);
    } finally {
      await load.stop();
    }
    expect(load.errors).toEqual([]);

    // The daemon's own schedule trimmed too, counted on /metrics and logged.
    await waitFor('a scheduled trim to delete rows', async () => (await trimmedTotal()) > 0, 15_000);
    expect(daemon?.output()).toMatch(/"component":"trimmer".*"msg":"trim done"/);

    // Invariant, after all of it, in the database itself.
    expect(await invariantViolations(db.pool)).toEqual([]);
    await trim(db.pool, SCHEMA, { journalMaxAgeMs: 0, journalMaxPerMirror: 1, transitionsMaxAgeMs: 0 });
    expect(await invariantViolations(db.pool)).toEqual([]);
  });
});
