/**
 * Retention: removes journal rows older than an age (measured on observed_at) and beyond a count per
 * mirror (the newest by version are kept), and, when configured, transitions older than an age.
 *
 * The journal invariant (migrations/0001_catalog.sql) holds in every committed state because each
 * chunk is one transaction that deletes journal rows AND rewrites the journal_length /
 * journal_oldest_at of the mirrors it deleted from, before it commits. A reader's snapshot sees the
 * chunk entirely or not at all.
 *
 * Lock protocol (the batch writer's, see applyBatch.ts): each chunk first locks the mirrors rows it
 * will touch, in mirror order (`collate "C"`), and only then deletes their journal or transitions
 * rows. Deleting first would deadlock: a batch that redelivers a key being deleted waits on our
 * uncommitted delete (the unique key) while holding the mirror row we would then wait for. Holding
 * the row locks also keeps every writer off those mirrors' journals for the chunk, so
 * `journal_length - deleted` is exact.
 *
 * Chunks are bounded (rows and mirrors), so a trim never holds locks or a transaction for long and
 * batches interleave between chunks.
 *
 * transitions_total is a counter of transitions ever recorded (peerdb_mirror_status_transitions_total
 * is a Prometheus counter): trimming transitions never decreases it.
 *
 * Concurrent trimmers (two replicas, or `mirrorstate trim` next to a daemon) queue up on a session
 * advisory lock, so chunks of two trims never interleave on the same rows.
 *
 * mirror_removals (migration 0005) is trimmed too, to its newest row. The /metrics change feed asks
 * one question of it: is there a removal written at or above my horizon? (metrics/readMirrorRows.ts.)
 * The newest row answers that for every horizon the deleted rows could: any horizon at or below a
 * deleted row's xid is below the newest row's xid too. So nothing the feed needs is ever lost,
 * however old a replica's horizon, and the table stays at one row plus the removals since the
 * last trim.
 */
import { inTransaction, type Pool, type PoolClient } from '../db/pool.js';
import { clientExecutor, type Executor, tables } from './sql.js';

/** Rows deleted per chunk (per transaction). */
export const TRIM_CHUNK_ROWS = 5000;
/** Mirrors locked per chunk: bounds how many batches one chunk can hold up. */
export const TRIM_CHUNK_MIRRORS = 200;

/** Taken by every trimmer for the length of a run; a constant of this project ('mstrim' in ASCII). */
const TRIM_ADVISORY_LOCK_KEY = 0x6d737472696d;

export interface RetentionSettings {
  /** 0 = no age limit. */
  journalMaxAgeMs: number;
  /** 0 = no count limit. */
  journalMaxPerMirror: number;
  /** 0 = transitions are kept forever. */
  transitionsMaxAgeMs: number;
}

export interface TrimOptions extends RetentionSettings {
  chunkRows?: number;
  chunkMirrors?: number;
  /** Called after each committed chunk with the journal rows it removed (for the metric). */
  onJournalTrimmed?: (rows: number) => void;
  /** Aborted: the run ends after the chunk in hand (every committed chunk is consistent). */
  signal?: AbortSignal;
}

export interface TrimResult {
  journalByAge: number;
  journalByCount: number;
  transitions: number;
  /** mirror_removals rows deleted (all but the newest). */
  removals: number;
  chunks: number;
}

/** Mirror → journal rows deleted from it in this chunk. */
type Deleted = Map<string, number>;

function countByMirror(rows: { mirror: string; n: number }[]): Deleted {
  return new Map(rows.map((r) => [r.mirror, r.n]));
}

/** Locks (in mirror order) mirrors after `after` that have journal rows older than the age limit. */
export async function lockMirrorsWithOldJournal(
  db: Executor, schema: string, after: string, maxAgeMs: number, limit: number,
): Promise<string[]> {
  const t = tables(schema);
  const { rows } = await db.executeSql(
    `select mirror from ${t.mirrors}
      where mirror collate "C" > $1::text collate "C"
        and journal_oldest_at < now() - $2::bigint * interval '1 millisecond'
      order by mirror collate "C" limit $3::int
      for update`,
    [after, maxAgeMs, limit],
  );
  return rows.map((r: { mirror: string }) => r.mirror);
}

/** Deletes up to `limit` journal rows of `mirrors` older than the age limit. */
export async function deleteJournalOlderThan(
  db: Executor, schema: string, mirrors: string[], maxAgeMs: number, limit: number,
): Promise<Deleted> {
  const t = tables(schema);
  const { rows } = await db.executeSql(
    `with doomed as (
       select id from ${t.journal}
        where mirror = any($1::text[]) and observed_at < now() - $2::bigint * interval '1 millisecond'
        limit $3::int
     ), deleted as (
       delete from ${t.journal} j using doomed where j.id = doomed.id returning j.mirror
     )
     select mirror, count(*)::int as n from deleted group by mirror`,
    [mirrors, maxAgeMs, limit],
  );
  return countByMirror(rows);
}

/** Locks (in mirror order) mirrors after `after` whose journal is longer than the count limit. */
export async function lockMirrorsWithLongJournal(
  db: Executor, schema: string, after: string, maxPerMirror: number, limit: number,
): Promise<string[]> {
  const t = tables(schema);
  const { rows } = await db.executeSql(
    `select mirror from ${t.mirrors}
      where mirror collate "C" > $1::text collate "C" and journal_length > $2::int
      order by mirror collate "C" limit $3::int
      for update`,
    [after, maxPerMirror, limit],
  );
  return rows.map((r: { mirror: string }) => r.mirror);
}

/**
 * Deletes up to `limit` journal rows of `mirrors` beyond the newest `maxPerMirror` by version. The
 * rows kept are found by walking the idempotency key's index newest first, not from journal_length,
 * so the choice is right by construction.
 */
export async function deleteJournalBeyondCount(
  db: Executor, schema: string, mirrors: string[], maxPerMirror: number, limit: number,
): Promise<Deleted> {
  const t = tables(schema);
  const { rows } = await db.executeSql(
    `with doomed as (
       select x.id from unnest($1::text[]) as m(mirror)
        cross join lateral (
          select id from ${t.journal} j where j.mirror = m.mirror
           order by j.observed_at desc, j.seq desc offset $2::int
        ) x
        limit $3::int
     ), deleted as (
       delete from ${t.journal} j using doomed where j.id = doomed.id returning j.mirror
     )
     select mirror, count(*)::int as n from deleted group by mirror`,
    [mirrors, maxPerMirror, limit],
  );
  return countByMirror(rows);
}

/**
 * Rewrites journal_length and journal_oldest_at of the mirrors a chunk deleted from. Runs in the
 * chunk's transaction under its row locks, after its delete, whose effect it sees.
 */
export async function updateJournalMetadata(db: Executor, schema: string, deleted: Deleted): Promise<void> {
  if (deleted.size === 0) return;
  const t = tables(schema);
  await db.executeSql(
    `update ${t.mirrors} as m
        set journal_length = m.journal_length - d.n,
            journal_oldest_at = (select min(j.observed_at) from ${t.journal} j where j.mirror = m.mirror)
       from unnest($1::text[], $2::int[]) as d(mirror, n)
      where m.mirror = d.mirror`,
    [[...deleted.keys()], [...deleted.values()]],
  );
}

/**
 * Locks (in mirror order) the mirrors that own the oldest transitions past the age limit, at most
 * `limit` transitions' worth.
 */
export async function lockMirrorsWithOldTransitions(db: Executor, schema: string, maxAgeMs: number, limit: number): Promise<string[]> {
  const t = tables(schema);
  const { rows } = await db.executeSql(
    `select mirror from ${t.mirrors}
      where mirror in (
        select mirror from ${t.transitions}
         where at < now() - $1::bigint * interval '1 millisecond'
         order by at limit $2::int)
      order by mirror collate "C"
      for update`,
    [maxAgeMs, limit],
  );
  return rows.map((r: { mirror: string }) => r.mirror);
}

/** Deletes up to `limit` transitions of `mirrors` older than the age limit; transitions_total stays. */
export async function deleteTransitionsOlderThan(
  db: Executor, schema: string, mirrors: string[], maxAgeMs: number, limit: number,
): Promise<number> {
  const t = tables(schema);
  const { rows } = await db.executeSql(
    `with deleted as (
       delete from ${t.transitions} where id in (
         select id from ${t.transitions}
          where mirror = any($1::text[]) and at < now() - $2::bigint * interval '1 millisecond'
          order by at limit $3::int)
       returning 1
     )
     select count(*)::int as n from deleted`,
    [mirrors, maxAgeMs, limit],
  );
  return (rows[0] as { n: number }).n;
}

/** Deletes every mirror_removals row but the newest (see the top of this file for why that is safe). */
export async function trimMirrorRemovals(db: Executor, schema: string): Promise<number> {
  const t = tables(schema);
  const { rows } = await db.executeSql(
    `with deleted as (
       delete from ${t.mirrorRemovals} where xid < (select max(xid) from ${t.mirrorRemovals}) returning 1
     )
     select count(*)::int as n from deleted`,
  );
  return (rows[0] as { n: number }).n;
}

function sum(deleted: Deleted): number {
  let n = 0;
  for (const v of deleted.values()) n += v;
  return n;
}

/** One journal chunk: lock, delete, rewrite the metadata, commit. */
async function journalChunk(
  pool: Pool,
  schema: string,
  lock: (db: Executor) => Promise<string[]>,
  remove: (db: Executor, mirrors: string[]) => Promise<Deleted>,
): Promise<{ mirrors: string[]; deleted: number }> {
  return inTransaction(pool, 'begin', async (client) => {
    const db = clientExecutor(client);
    const mirrors = await lock(db);
    if (mirrors.length === 0) return { mirrors, deleted: 0 };
    const deleted = await remove(db, mirrors);
    await updateJournalMetadata(db, schema, deleted);
    return { mirrors, deleted: sum(deleted) };
  });
}

/**
 * One pass over the mirrors in mirror order, `chunkMirrors` at a time. A group is taken again while
 * its chunks come back full (a backlog bigger than one chunk), then the cursor moves past it. The
 * pass ends at the last mirror, so a run ends even while producers keep adding rows.
 */
async function journalPass(
  pool: Pool,
  schema: string,
  chunkRows: number,
  lock: (db: Executor, after: string) => Promise<string[]>,
  remove: (db: Executor, mirrors: string[]) => Promise<Deleted>,
  onChunk: (deleted: number) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  let after = '';
  while (!signal?.aborted) {
    const chunk = await journalChunk(pool, schema, (db) => lock(db, after), remove);
    if (chunk.mirrors.length === 0) return;
    if (chunk.deleted > 0) onChunk(chunk.deleted);
    if (chunk.deleted < chunkRows) after = chunk.mirrors[chunk.mirrors.length - 1] as string;
  }
}

async function withTrimLock<T>(pool: Pool, fn: () => Promise<T>): Promise<T> {
  const client: PoolClient = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('select pg_advisory_lock($1::bigint)', [TRIM_ADVISORY_LOCK_KEY]);
    try {
      return await fn();
    } finally {
      await client.query('select pg_advisory_unlock($1::bigint)', [TRIM_ADVISORY_LOCK_KEY]).catch((err: Error) => {
        broken = err;
      });
    }
  } finally {
    // A connection that could not unlock must not go back to the pool still holding the lock.
    client.release(broken);
  }
}

/**
 * Runs retention once: a pass over the mirrors for the journal by age, one for the journal by count,
 * then transitions by age until none is left past the limit. Each chunk commits on its own; a failure leaves every committed
 * chunk in place (and consistent) and throws.
 */
export async function trim(pool: Pool, schema: string, options: TrimOptions): Promise<TrimResult> {
  const chunkRows = options.chunkRows ?? TRIM_CHUNK_ROWS;
  const chunkMirrors = options.chunkMirrors ?? TRIM_CHUNK_MIRRORS;
  const result: TrimResult = { journalByAge: 0, journalByCount: 0, transitions: 0, removals: 0, chunks: 0 };
  const countInto = (field: 'journalByAge' | 'journalByCount') => (n: number) => {
    result[field] += n;
    result.chunks++;
    options.onJournalTrimmed?.(n);
  };
  return withTrimLock(pool, async () => {
    if (options.journalMaxAgeMs > 0) {
      const maxAgeMs = options.journalMaxAgeMs;
      await journalPass(
        pool, schema, chunkRows,
        (db, after) => lockMirrorsWithOldJournal(db, schema, after, maxAgeMs, chunkMirrors),
        (db, mirrors) => deleteJournalOlderThan(db, schema, mirrors, maxAgeMs, chunkRows),
        countInto('journalByAge'),
        options.signal,
      );
    }
    if (options.journalMaxPerMirror > 0) {
      const max = options.journalMaxPerMirror;
      await journalPass(
        pool, schema, chunkRows,
        (db, after) => lockMirrorsWithLongJournal(db, schema, after, max, chunkMirrors),
        (db, mirrors) => deleteJournalBeyondCount(db, schema, mirrors, max, chunkRows),
        countInto('journalByCount'),
        options.signal,
      );
    }
    if (options.transitionsMaxAgeMs > 0) {
      // Only rows older than a cutoff qualify, and new transitions are new: this loop ends.
      const maxAgeMs = options.transitionsMaxAgeMs;
      while (!options.signal?.aborted) {
        const n = await inTransaction(pool, 'begin', async (client) => {
          const db = clientExecutor(client);
          const mirrors = await lockMirrorsWithOldTransitions(db, schema, maxAgeMs, chunkRows);
          return mirrors.length === 0 ? 0 : deleteTransitionsOlderThan(db, schema, mirrors, maxAgeMs, chunkRows);
        });
        if (n === 0) break;
        result.transitions += n;
        result.chunks++;
      }
    }
    if (!options.signal?.aborted) {
      result.removals = await inTransaction(pool, 'begin', (client) => trimMirrorRemovals(clientExecutor(client), schema));
    }
    return result;
  });
}
