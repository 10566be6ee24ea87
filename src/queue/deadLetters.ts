/**
 * Dead letters: the jobs on `mirrorstate-updates-dlq`, each `{ reason, errors, update, job }`
 * (docs/message.md, Dead letters), read, redriven and purged by `mirrorstate dlq` (docs/cli.md).
 *
 * pg-boss's API is used where it has the verb: `findJobs` for one letter by id, `insert` to re-create
 * an update on `mirrorstate-updates` (so a redriven job gets that queue's retry and expiry options
 * exactly as a published one does), `deleteJob` for a purge by ids. The rest is SQL on pg-boss's job
 * table (as jobCounts.ts reads it), because the API has no filter by age or text, no count,
 * no paging, and its own `redrive()` re-creates a dead letter's data as it is, while ours must
 * unwrap the `update` inside it.
 *
 * Moving a letter is one transaction: `takeDeadLetters` deletes a batch and returns each update as
 * received, the caller inserts the updates through the same transaction, and one commit does both.
 * A crash or error before the commit leaves the letters where they were and no new job; after it,
 * the letters are gone and the jobs exist. Two redrives at once never move a letter twice: the
 * delete holds the row lock, and a concurrent one skips (filters) or waits for and then misses (ids)
 * a locked row.
 */
import { quoteIdent, type Executor, UTC_MICROS } from '../catalog/sql.js';
import type { FieldError } from '../update.js';
import { DEAD_LETTER_QUEUE } from './boss.js';

/** Which dead letters a list, redrive or purge is about. Each field narrows; none means all. */
export interface DeadLetterFilter {
  /** Made more than this long ago. */
  olderThanMs?: number;
  /** Made at most this long ago. */
  newerThanMs?: number;
  /** Reason contains this text, ignoring case. */
  reason?: string;
  /** The update's `mirror` is exactly this. */
  mirror?: string;
  /** Made at or before this instant (RFC 3339): fixes the set a long redrive or purge works through. */
  createdBefore?: string;
}

/** One line of `dlq list`. */
export interface DeadLetterSummary {
  id: string;
  createdAt: string;
  state: string;
  /** The update's mirror when it has one as a string, else null. */
  mirror: string | null;
  reason: string | null;
  errors: FieldError[] | null;
  job: { id: string; index: number | null } | null;
}

/** A taken letter: its id and the update as received, to re-create. */
export interface TakenDeadLetter {
  id: string;
  update: unknown;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isDeadLetterId(text: string): boolean {
  return UUID.test(text);
}

/** `$1` is the queue name; the filter takes `$2`–`$6`. */
function where(filter: DeadLetterFilter): { sql: string; values: unknown[] } {
  return {
    sql: `name = $1
      and ($2::bigint is null or created_on < now() - $2::bigint * interval '1 millisecond')
      and ($3::bigint is null or created_on >= now() - $3::bigint * interval '1 millisecond')
      and ($4::text is null or strpos(lower(data->>'reason'), lower($4::text)) > 0)
      and ($5::text is null or data->'update'->>'mirror' = $5::text)
      and ($6::timestamptz is null or created_on <= $6::timestamptz)`,
    values: [
      DEAD_LETTER_QUEUE,
      filter.olderThanMs ?? null,
      filter.newerThanMs ?? null,
      filter.reason ?? null,
      filter.mirror ?? null,
      filter.createdBefore ?? null,
    ],
  };
}

/** The queue database's clock now, to fix a set with `createdBefore`. */
export async function queueNow(db: Executor): Promise<string> {
  const { rows } = await db.executeSql(`select ${UTC_MICROS('now()')} as now`);
  return (rows[0] as { now: string }).now;
}

export async function countDeadLetters(db: Executor, bossSchema: string, filter: DeadLetterFilter): Promise<number> {
  const w = where(filter);
  const { rows } = await db.executeSql(`select count(*)::int as n from ${quoteIdent(bossSchema)}.job where ${w.sql}`, w.values);
  return (rows[0] as { n: number }).n;
}

/** Newest first, at most `limit`. */
export async function listDeadLetters(
  db: Executor,
  bossSchema: string,
  filter: DeadLetterFilter,
  limit: number,
): Promise<DeadLetterSummary[]> {
  const w = where(filter);
  const { rows } = await db.executeSql(
    `select id::text as id, ${UTC_MICROS('created_on')} as "createdAt", state::text as state,
            case when jsonb_typeof(data->'update'->'mirror') = 'string' then data->'update'->>'mirror' end as mirror,
            data->>'reason' as reason, data->'errors' as errors, data->'job' as job
       from ${quoteIdent(bossSchema)}.job
      where ${w.sql}
      order by created_on desc, id desc
      limit $7::int`,
    [...w.values, limit],
  );
  return rows as DeadLetterSummary[];
}

/**
 * Deletes up to `limit` redrivable letters matching `filter` with an id after `afterId`, in id
 * order, and returns their updates; rows another transaction holds are skipped. Redrivable: not
 * active (nothing works this queue, but a letter someone fetched is theirs) and carrying an `update`
 * (a job someone else put on this queue is left alone). Only useful inside a transaction that
 * re-creates what it returns.
 *
 * Id order walks the job table's primary key (name, id): a caller passing the last id it got as
 * `afterId` visits each row once over the whole set, where an order by age would sort every
 * remaining letter again for each batch.
 */
export async function takeDeadLetters(
  tx: Executor,
  bossSchema: string,
  filter: DeadLetterFilter,
  limit: number,
  afterId: string | null = null,
): Promise<TakenDeadLetter[]> {
  const job = `${quoteIdent(bossSchema)}.job`;
  const w = where(filter);
  const { rows } = await tx.executeSql(
    `with picked as (
       select id from ${job}
        where ${w.sql} and ($8::uuid is null or id > $8::uuid) and state < 'active' and data ? 'update'
        order by id
        limit $7::int
        for update skip locked)
     delete from ${job} j using picked
      where j.name = $1 and j.id = picked.id
     returning j.id::text as id, j.data->'update' as update`,
    [...w.values, limit, afterId],
  );
  return rows as TakenDeadLetter[];
}

/** As takeDeadLetters, for these ids: waits for a row another transaction holds, then takes it if it is still there. */
export async function takeDeadLettersById(tx: Executor, bossSchema: string, ids: readonly string[]): Promise<TakenDeadLetter[]> {
  const { rows } = await tx.executeSql(
    `delete from ${quoteIdent(bossSchema)}.job
      where name = $1 and id = any($2::uuid[]) and state < 'active' and data ? 'update'
     returning id::text as id, data->'update' as update`,
    [DEAD_LETTER_QUEUE, ids],
  );
  return rows as TakenDeadLetter[];
}

/**
 * Deletes up to `limit` letters matching `filter` with an id after `afterId`, in id order (as
 * takeDeadLetters), skipping rows another transaction holds. Returns how many, and the last id.
 */
export async function purgeDeadLetters(
  db: Executor,
  bossSchema: string,
  filter: DeadLetterFilter,
  limit: number,
  afterId: string | null = null,
): Promise<{ purged: number; lastId: string | null }> {
  const job = `${quoteIdent(bossSchema)}.job`;
  const w = where(filter);
  const { rows } = await db.executeSql(
    `with picked as (
       select id from ${job} where ${w.sql} and ($8::uuid is null or id > $8::uuid)
        order by id limit $7::int for update skip locked),
     gone as (delete from ${job} j using picked where j.name = $1 and j.id = picked.id returning j.id)
     select count(*)::int as purged, max(id::text) as "lastId" from gone`,
    [...w.values, limit, afterId],
  );
  return rows[0] as { purged: number; lastId: string | null };
}
