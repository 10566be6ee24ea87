/**
 * The change feed of /metrics (readMirrorRows.ts): a warm cache reads only the rows written at or
 * above the previous snapshot's xmin horizon. Each test compares what the warm cache serves with a
 * fresh full render of the same catalog state: under a writer that commits after a later one (the
 * trap a "newest change seen" watermark falls into), drops, rows deleted outright, truncated or
 * renamed (mirror_removals, migration 0005), and concurrent writers holding transactions open for
 * random lengths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { inTransaction } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { MIRROR_FAMILIES } from '../../src/metrics/families.js';
import { feedStatement, readMirrorFeed } from '../../src/metrics/feed.js';
import { NO_SHARDING } from '../../src/metrics/shard.js';
import { createSnapshotPool } from '../../src/metrics/snapshotPool.js';
import { MirrorSnapshots, type Snapshot } from '../../src/metrics/snapshot.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { write } from '../reads/support.js';

const SCHEMA = 'mirrorstate';
const MIRRORS = 400;
const logger = createLogger('silent');

let db: TestDatabase;
let snapshotPool: pg.Pool;
let warm: MirrorSnapshots;

/** Every per-mirror sample line of a snapshot, per family, sorted: comparable across caches. */
function lines(snapshot: Snapshot | undefined): string[][] {
  return MIRROR_FAMILIES.map((_, f) =>
    (snapshot?.buckets ?? []).flatMap((b) => b.text[f]!.toString('utf8').split('\n').filter((l) => l !== '')).sort(),
  );
}

async function warmRead(): Promise<Snapshot | undefined> {
  const scrape = await warm.forScrape(30_000);
  expect(scrape.catalogUp).toBe(true);
  return scrape.snapshot;
}

async function freshRead(): Promise<Snapshot | undefined> {
  const fresh = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger });
  const scrape = await fresh.forScrape(30_000);
  expect(fresh.lastReadKind).toBe('full');
  return scrape.snapshot;
}

async function expectWarmEqualsFresh(): Promise<void> {
  const got = lines(await warmRead());
  expect(got).toEqual(lines(await freshRead()));
}

const UPDATE = `update "${SCHEMA}".mirrors set lag_seconds = $2, rows_synced = coalesce(rows_synced, 0) + 1, updated_at = clock_timestamp() where mirror = $1`;

beforeAll(async () => {
  db = await createTestDatabase('metrics_feed');
  await migrate(db.pool, SCHEMA, logger);
  await db.pool.query(
    `insert into "${SCHEMA}".mirrors (mirror, status, status_since, observed_at, seq, lag_seconds)
     select 'm' || lpad(i::text, 4, '0'), 'running', now(), now(), 0, i from generate_series(1, $1::int) as i`,
    [MIRRORS],
  );
  snapshotPool = createSnapshotPool(db.url, logger);
  warm = new MirrorSnapshots({ pool: snapshotPool, schema: SCHEMA, logger });
});

afterAll(async () => {
  await snapshotPool?.end();
  await db?.drop();
});

describe('the /metrics change feed', () => {
  it('reads only the changed rows once warm', async () => {
    await warmRead();
    await warmRead();
    expect(warm.lastReadKind).toBe('feed');
    await db.pool.query(UPDATE, ['m0007', 123.5]);
    const snapshot = await warmRead();
    expect(warm.lastReadKind).toBe('feed');
    expect(warm.lastRendered).toBe(1);
    expect(lines(snapshot)[6]).toContain('peerdb_mirror_lag_seconds{mirror="m0007"} 123.5');
  });

  it('sees a change whose transaction began before, and committed after, a change the previous scrape saw', async () => {
    await warmRead();
    const early = await db.pool.connect();
    try {
      await early.query('begin');
      await early.query(UPDATE, ['m0001', 1001]); // its xid is older than the next writer's
      await db.pool.query(UPDATE, ['m0002', 1002]); // younger xid, committed first
      const between = lines(await warmRead());
      expect(between[6]).toContain('peerdb_mirror_lag_seconds{mirror="m0002"} 1002');
      expect(between[6]).not.toContain('peerdb_mirror_lag_seconds{mirror="m0001"} 1001');
      await early.query('commit');
    } finally {
      early.release();
    }
    const after = lines(await warmRead());
    expect(warm.lastReadKind).toBe('feed');
    expect(after[6]).toContain('peerdb_mirror_lag_seconds{mirror="m0001"} 1001');
    await expectWarmEqualsFresh();
  });

  it('forgets dropped mirrors, takes back undropped and new ones, and notices rows deleted outright', async () => {
    await warmRead();
    await db.pool.query(`update "${SCHEMA}".mirrors set dropped_at = now(), updated_at = clock_timestamp() where mirror in ('m0010', 'm0011')`);
    await db.pool.query(`insert into "${SCHEMA}".mirrors (mirror, status, status_since, observed_at, seq) values ('new_one', 'setup', now(), now(), 0)`);
    let text = lines(await warmRead()).flat().join('\n');
    expect(warm.lastReadKind).toBe('feed');
    expect(text).not.toContain('mirror="m0010"');
    expect(text).toContain('mirror="new_one"');
    await expectWarmEqualsFresh();
    await db.pool.query(`update "${SCHEMA}".mirrors set dropped_at = null, updated_at = clock_timestamp() where mirror = 'm0010'`);
    await db.pool.query(`delete from "${SCHEMA}".mirrors where mirror = 'm0020'`);
    text = lines(await warmRead()).flat().join('\n');
    expect(text).toContain('mirror="m0010"');
    expect(text).not.toContain('mirror="m0020"');
    await expectWarmEqualsFresh();
  });

  it('notices a rename and a truncate, which leave no row version behind for the old names', async () => {
    await warmRead();
    await db.pool.query(`update "${SCHEMA}".mirrors set mirror = 'renamed_0030', updated_at = clock_timestamp() where mirror = 'm0030'`);
    let text = lines(await warmRead()).flat().join('\n');
    expect(warm.lastReadKind).toBe('full');
    expect(text).toContain('mirror="renamed_0030"');
    expect(text).not.toContain('mirror="m0030"');
    await expectWarmEqualsFresh();

    const kept = await db.pool.query(`select * from "${SCHEMA}".mirrors`);
    await inTransaction(db.pool, 'begin', async (client) => {
      await client.query(`truncate "${SCHEMA}".mirrors, "${SCHEMA}".mirror_tables`);
      await client.query(`insert into "${SCHEMA}".mirrors (mirror, status, status_since, observed_at, seq) values ('alone', 'running', now(), now(), 0)`);
    });
    text = lines(await warmRead()).flat().join('\n');
    expect(text).toContain('mirror="alone"');
    expect(text).not.toContain('mirror="m0001"');
    await expectWarmEqualsFresh();
    // Put the fleet back for the tests after this one.
    await db.pool.query(`truncate "${SCHEMA}".mirrors, "${SCHEMA}".mirror_tables`);
    const columns = kept.fields.map((f) => f.name).filter((c) => c !== 'shard_hash');
    await db.pool.query(
      `insert into "${SCHEMA}".mirrors (${columns.join(', ')}) select ${columns.join(', ')} from json_populate_recordset(null::"${SCHEMA}".mirrors, $1)`,
      [JSON.stringify(kept.rows)],
    );
  });

  it("stays on the feed through the batch writer's inserts, updates, drops and stale updates (it removes no row)", async () => {
    const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
    await warmRead();
    // Once read, the removals the tests above made are of no more use, but they stay at or above
    // any horizon that a long transaction elsewhere on the server holds back (the horizon is the
    // server's, not this database's), and would send every later read back to a full one.
    await db.pool.query(`delete from "${SCHEMA}".mirror_removals`);
    await warmRead();
    const before = await db.pool.query(`select count(*)::int as n from "${SCHEMA}".mirror_removals`);
    await write(db.pool, [
      { mirror: 'written_1', status: 'setup', observedAt: at(1) },
      { mirror: 'written_1', status: 'running', observedAt: at(2) },
      { mirror: 'written_2', status: 'running', observedAt: at(1) },
    ]);
    await write(db.pool, [
      { mirror: 'written_1', status: 'running', observedAt: at(1) }, // stale
      { mirror: 'written_2', status: 'terminated', observedAt: at(3), dropped: true },
    ]);
    const text = lines(await warmRead()).flat().join('\n');
    expect(warm.lastReadKind).toBe('feed');
    expect(text).toContain('peerdb_mirror_status{mirror="written_1",status="running"} 1');
    expect(text).not.toContain('mirror="written_2"');
    const after = await db.pool.query(`select count(*)::int as n from "${SCHEMA}".mirror_removals`);
    expect(after.rows[0].n).toBe(before.rows[0].n);
    await expectWarmEqualsFresh();
  });

  it('sees a change committed while the feed was being read (position and changes are one snapshot)', async () => {
    await warmRead();
    const held = await db.pool.connect();
    let commitHeld: (() => Promise<unknown>) | undefined;
    try {
      await held.query('begin');
      await held.query(UPDATE, ['m0003', 3003]);
      commitHeld = () => held.query('commit');
      // Commits the held writer as soon as the feed's first statement has answered: a position
      // read apart from the changes would then pass the writer's xid, and its change be lost.
      const racing = new Proxy(snapshotPool, {
        get(target, key, receiver) {
          if (key !== 'query') return Reflect.get(target, key, receiver);
          return async (...args: Parameters<pg.Pool['query']>) => {
            const result = await (target.query as (...a: unknown[]) => Promise<unknown>)(...args);
            const commit = commitHeld;
            commitHeld = undefined;
            await commit?.();
            return result;
          };
        },
      });
      const racer = new MirrorSnapshots({ pool: racing, schema: SCHEMA, logger });
      await racer.forScrape(30_000);
      await racer.forScrape(30_000); // the feed, with the writer committing during it
      expect(racer.lastReadKind).toBe('feed');
      const after = await racer.forScrape(30_000);
      expect(racer.lastReadKind).toBe('feed');
      expect(lines(after.snapshot)[6]).toContain('peerdb_mirror_lag_seconds{mirror="m0003"} 3003');
    } finally {
      await commitHeld?.();
      held.release();
    }
  });

  it('reads every row from a horizon more than 2^31 transactions back (its age wraps negative)', async () => {
    const { rows } = await db.pool.query<{ next: string; live: number }>(
      `select pg_snapshot_xmax(pg_current_snapshot())::text as next, (select count(*)::int from "${SCHEMA}".mirrors) as live`,
    );
    const { next, live } = rows[0]!;
    const recent = await readMirrorFeed(snapshotPool, feedStatement(SCHEMA, NO_SHARDING), next);
    expect(recent.changes.length).toBe(0);
    // The same 32-bit xid as one 2^31 + 10 transactions before `next`: age() sees it that old.
    const ancient = await readMirrorFeed(snapshotPool, feedStatement(SCHEMA, NO_SHARDING), String(BigInt(next) + 2n ** 31n - 10n));
    expect(ancient.changes.length).toBe(live);
  });

  it('equals a fresh full render after concurrent writers, drops and deletes, with scrapes in between', async () => {
    await warmRead();
    let stop = false;
    const writer = async (w: number) => {
      const client = await db.pool.connect();
      try {
        for (let k = 0; !stop; k++) {
          await client.query('begin');
          const n = 1 + Math.floor(Math.random() * 4);
          for (let j = 0; j < n; j++) {
            const mirror = `m${String(1 + Math.floor(Math.random() * MIRRORS)).padStart(4, '0')}`;
            const roll = Math.random();
            if (roll < 0.05) await client.query(`update "${SCHEMA}".mirrors set dropped_at = case when dropped_at is null then now() end, updated_at = clock_timestamp() where mirror = $1`, [mirror]);
            else if (roll < 0.07) await client.query(`delete from "${SCHEMA}".mirrors where mirror = $1`, [`x_${w}_${k - 3}`]);
            else if (roll < 0.1) await client.query(`insert into "${SCHEMA}".mirrors (mirror, status, status_since, observed_at, seq) values ($1, 'setup', now(), now(), 0) on conflict do nothing`, [`x_${w}_${k}`]);
            else await client.query(UPDATE, [mirror, w * 1000 + k]);
          }
          // Held open for a while, so transactions commit out of xid order around the scrapes.
          await new Promise((r) => setTimeout(r, Math.random() * 15));
          await client.query(Math.random() < 0.1 ? 'rollback' : 'commit');
        }
      } catch (err) {
        // A deadlock between two random writers is the writers' business, not the feed's.
        await client.query('rollback').catch(() => undefined);
        if (!(err instanceof Error && /deadlock/.test(err.message))) throw err;
      } finally {
        client.release();
      }
    };
    const writers = [1, 2, 3, 4].map(writer);
    let feeds = 0;
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      await warmRead();
      if (warm.lastReadKind === 'feed') feeds++;
    }
    stop = true;
    await Promise.all(writers);
    await expectWarmEqualsFresh();
    expect(feeds).toBeGreaterThan(5);
  });
});
