/**
 * Retention against a real catalog: the age and count limits keep exactly the right rows, 0 turns a
 * limit off, transitions retention leaves transitions_total alone, chunks keep the invariant, and a
 * trim racing batches that redeliver the keys it deletes neither deadlocks nor breaks the invariant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trim, type TrimOptions } from '../../src/catalog/trim.js';
import { sqlState } from '../../src/db/sqlstate.js';
import { feedStatement, readMirrorFeed } from '../../src/metrics/feed.js';
import { NO_SHARDING } from '../../src/metrics/shard.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { ago, invariantViolations, migrateCatalog, SCHEMA, write } from './support.js';

const DAY_MS = 86_400_000;
const OFF: TrimOptions = { journalMaxAgeMs: 0, journalMaxPerMirror: 0, transitionsMaxAgeMs: 0 };

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('reads_trim');
  await migrateCatalog(db.pool);
});

afterAll(async () => {
  await db?.drop();
});

async function journal(mirror: string): Promise<{ observed_at: string; seq: number }[]> {
  const { rows } = await db.pool.query(
    `select to_char(observed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as observed_at, seq
       from ${SCHEMA}.journal where mirror = $1 order by observed_at, seq`,
    [mirror],
  );
  return rows;
}

async function mirrorRow(mirror: string) {
  const { rows: [row] } = await db.pool.query(
    `select journal_length, transitions_total,
            to_char(journal_oldest_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as journal_oldest_at
       from ${SCHEMA}.mirrors where mirror = $1`,
    [mirror],
  );
  return row as { journal_length: number; transitions_total: number; journal_oldest_at: string | null };
}

describe('trim', () => {
  it('keeps the newest N journal rows per mirror by (observedAt, seq), seq breaking ties', async () => {
    // One instant for the whole test: ago() reads the clock at each call, and four updates meant to
    // share observedAt must not drift apart by a millisecond on a busy machine.
    const now = Date.now();
    const at = (i: number) => `${new Date(now - 60_000 + i * 1000).toISOString().slice(0, -1)}000Z`;
    const base = at(0);
    // Six updates at distinct times and four sharing one observedAt with different seqs, out of order.
    const updates = [
      ...[5, 1, 4, 2, 3, 0].map((i) => ({ mirror: 'count_a', status: i % 2 ? 'running' : 'paused', observedAt: at(i) })),
      ...[7, 5, 6, 8].map((seq) => ({ mirror: 'count_a', status: 'running', observedAt: at(6), seq })),
      { mirror: 'count_b', status: 'running', observedAt: base },
    ];
    await write(db.pool, updates);
    const before = await journal('count_a');
    expect(before).toHaveLength(10);

    const trimmed: number[] = [];
    const result = await trim(db.pool, SCHEMA, { ...OFF, journalMaxPerMirror: 3, onJournalTrimmed: (n) => trimmed.push(n) });

    expect(result.journalByCount).toBe(7);
    expect(trimmed.reduce((a, b) => a + b, 0)).toBe(7);
    const after = await journal('count_a');
    expect(after).toEqual(before.slice(-3)); // (at6, seq 6), (at6, 7), (at6, 8)
    expect(after.map((r) => r.seq)).toEqual([6, 7, 8]);
    expect(await mirrorRow('count_a')).toMatchObject({ journal_length: 3, journal_oldest_at: after[0]?.observed_at });
    expect(await journal('count_b')).toHaveLength(1);
    expect(await invariantViolations(db.pool)).toEqual([]);
  });

  it('removes journal rows older than the age limit, measured on observedAt', async () => {
    const old1 = ago(3 * DAY_MS, 111);
    const old2 = ago(2 * DAY_MS, 222);
    const fresh = ago(3_600_000, 333);
    await write(db.pool, [
      { mirror: 'age_a', status: 'running', observedAt: old1 },
      { mirror: 'age_a', status: 'paused', observedAt: old2 },
      { mirror: 'age_a', status: 'running', observedAt: fresh },
      { mirror: 'age_b', status: 'running', observedAt: old1 },
      { mirror: 'age_b', status: 'failed', observedAt: old2 },
    ]);
    const result = await trim(db.pool, SCHEMA, { ...OFF, journalMaxAgeMs: DAY_MS });
    expect(result.journalByAge).toBe(4);
    expect(await journal('age_a')).toEqual([{ observed_at: fresh, seq: 0 }]);
    expect(await mirrorRow('age_a')).toMatchObject({ journal_length: 1, journal_oldest_at: fresh });
    // Every row gone: the metadata says so, and the state and transitions stay.
    expect(await journal('age_b')).toEqual([]);
    expect(await mirrorRow('age_b')).toMatchObject({ journal_length: 0, journal_oldest_at: null, transitions_total: 2 });
    expect(await invariantViolations(db.pool)).toEqual([]);
  });

  it('removes nothing when every limit is 0', async () => {
    await write(db.pool, Array.from({ length: 5 }, (_, i) => ({ mirror: 'off_a', status: 'running', observedAt: ago(10 * DAY_MS - i) })));
    const { rows: [before] } = await db.pool.query(`select (select count(*) from ${SCHEMA}.journal) j, (select count(*) from ${SCHEMA}.transitions) t`);
    const result = await trim(db.pool, SCHEMA, OFF);
    const { rows: [after] } = await db.pool.query(`select (select count(*) from ${SCHEMA}.journal) j, (select count(*) from ${SCHEMA}.transitions) t`);
    expect(result).toEqual({ journalByAge: 0, journalByCount: 0, transitions: 0, removals: 0, chunks: 0 });
    expect(after).toEqual(before);
    expect(await journal('off_a')).toHaveLength(5);
  });

  it('trims transitions by age and never decreases transitions_total', async () => {
    await write(db.pool, [
      { mirror: 'tr_a', status: 'setup', observedAt: ago(5 * DAY_MS) },
      { mirror: 'tr_a', status: 'snapshot', observedAt: ago(4 * DAY_MS) },
      { mirror: 'tr_a', status: 'running', observedAt: ago(1000) },
    ]);
    expect((await mirrorRow('tr_a')).transitions_total).toBe(3);
    const result = await trim(db.pool, SCHEMA, { ...OFF, transitionsMaxAgeMs: 2 * DAY_MS });
    expect(result.transitions).toBeGreaterThanOrEqual(2);
    const { rows } = await db.pool.query(`select from_status, to_status from ${SCHEMA}.transitions where mirror = 'tr_a'`);
    expect(rows).toEqual([{ from_status: 'snapshot', to_status: 'running' }]);
    expect((await mirrorRow('tr_a')).transitions_total).toBe(3);
    // The journal is not the transitions' business.
    expect(await journal('tr_a')).toHaveLength(3);
  });

  it('works in bounded chunks and keeps the invariant across them', async () => {
    const updates = [];
    for (const mirror of ['chunk_a', 'chunk_b', 'chunk_c']) {
      for (let i = 0; i < 40; i++) updates.push({ mirror, status: i % 3 ? 'running' : 'paused', observedAt: ago(30 * DAY_MS - i * 1000) });
    }
    await write(db.pool, updates);
    const result = await trim(db.pool, SCHEMA, { ...OFF, journalMaxPerMirror: 5, chunkRows: 7, chunkMirrors: 2 });
    expect(result.journalByCount).toBe(3 * 35);
    expect(result.chunks).toBeGreaterThanOrEqual(15); // 105 rows, at most 7 a chunk
    for (const mirror of ['chunk_a', 'chunk_b', 'chunk_c']) expect((await mirrorRow(mirror)).journal_length).toBe(5);
    expect(await invariantViolations(db.pool)).toEqual([]);
  });

  it('stops after the chunk in hand when aborted, every committed chunk consistent', async () => {
    const updates = [];
    for (let i = 0; i < 60; i++) updates.push({ mirror: 'abort_a', status: 'running', observedAt: ago(30 * DAY_MS - i * 1000) });
    await write(db.pool, updates);
    const stop = new AbortController();
    const result = await trim(db.pool, SCHEMA, {
      ...OFF, journalMaxPerMirror: 5, chunkRows: 10,
      signal: stop.signal, onJournalTrimmed: () => stop.abort(), // abort once the first chunk committed
    });
    expect(result).toMatchObject({ chunks: 1, journalByCount: 10 });
    expect((await mirrorRow('abort_a')).journal_length).toBe(50);
    expect(await invariantViolations(db.pool)).toEqual([]);
  });

  it('neither deadlocks nor breaks the invariant while batches redeliver the keys it deletes', async () => {
    const mirrors = Array.from({ length: 12 }, (_, i) => `race_${String(i).padStart(2, '0')}`);
    // Old keys, redelivered again and again: trimmed, then journaled again as stale, then trimmed.
    const old = mirrors.flatMap((mirror) =>
      Array.from({ length: 6 }, (_, i) => ({ mirror, status: 'running', observedAt: ago(DAY_MS + i * 1000), seq: i })));
    await write(db.pool, old);
    const errors: string[] = [];
    let batches = 0;
    let trims = 0;
    let trimmedRows = 0;
    const deadline = Date.now() + 3000;
    const writer = async (offset: number) => {
      let n = 0;
      while (Date.now() < deadline) {
        // Reverse and shuffle the mirror order, so only the lock protocol keeps batches apart.
        const redelivered = [...old].sort(() => Math.random() - 0.5).slice(0, 30);
        const fresh = mirrors.map((mirror) => ({ mirror, status: n % 2 ? 'running' : 'paused', observedAt: ago(0), seq: offset + n }));
        n++;
        try {
          await write(db.pool, [...redelivered, ...fresh]);
          batches++;
        } catch (err) {
          errors.push(`write ${sqlState(err)} ${(err as Error).message}`);
        }
      }
    };
    const trimmer = async () => {
      while (Date.now() < deadline) {
        try {
          const r = await trim(db.pool, SCHEMA, { journalMaxAgeMs: DAY_MS / 2, journalMaxPerMirror: 2, transitionsMaxAgeMs: 0, chunkMirrors: 5 });
          trims++;
          trimmedRows += r.journalByAge + r.journalByCount;
        } catch (err) {
          errors.push(`trim ${sqlState(err)} ${(err as Error).message}`);
        }
      }
    };
    await Promise.all([writer(0), writer(1_000_000), trimmer()]);
    console.log(`race: ${batches} batches, ${trims} trims, ${trimmedRows} journal rows trimmed`);
    expect(errors).toEqual([]);
    expect(batches).toBeGreaterThan(10);
    expect(trimmedRows).toBeGreaterThan(100);
    expect(await invariantViolations(db.pool)).toEqual([]);
  });
});

describe('trim of mirror_removals', () => {
  const removals = async () => (await db.pool.query(`select count(*)::int as n from ${SCHEMA}.mirror_removals`)).rows[0].n as number;
  // A horizon as the feed holds one: every transaction below it has ended. A new transaction's own id is
  // one (its snapshot's xmin would be too, but other databases' open transactions on the same server
  // hold that back, and the test would then depend on what else the server is running).
  const position = async () => (await db.pool.query(`select pg_current_xact_id()::text as h`)).rows[0].h as string;

  it('keeps only the newest row, and every horizon the feed may still hold still sees a removal', async () => {
    await db.pool.query(`delete from ${SCHEMA}.mirror_removals`);
    await write(db.pool, ['gone_a', 'gone_b', 'gone_c', 'stays'].map((mirror) => ({ mirror, status: 'running', observedAt: ago(1000) })));
    const beforeAll = await position(); // a replica that last read before any removal
    await db.pool.query(`delete from ${SCHEMA}.mirrors where mirror = 'gone_a'`);
    const afterFirst = await position(); // one that read between the first removal and the last
    await db.pool.query(`delete from ${SCHEMA}.mirrors where mirror = 'gone_b'`);
    await db.pool.query(`update ${SCHEMA}.mirrors set mirror = 'renamed' where mirror = 'gone_c'`);
    const afterAll = await position(); // one that read after every removal
    expect(await removals()).toBe(3);

    const result = await trim(db.pool, SCHEMA, OFF);
    expect(result.removals).toBe(2);
    expect(await removals()).toBe(1);
    // What the feed asks (metrics/feed.ts): a removal at or above my horizon?
    expect((await readMirrorFeed(db.pool, feedStatement(SCHEMA, NO_SHARDING), beforeAll)).removed).toBe(true);
    expect((await readMirrorFeed(db.pool, feedStatement(SCHEMA, NO_SHARDING), afterFirst)).removed).toBe(true);
    expect((await readMirrorFeed(db.pool, feedStatement(SCHEMA, NO_SHARDING), afterAll)).removed).toBe(false);

    // Nothing to trim: a second run leaves the newest row in place.
    expect((await trim(db.pool, SCHEMA, OFF)).removals).toBe(0);
    expect(await removals()).toBe(1);
  });
});
