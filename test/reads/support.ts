/** Shared by the test/reads files: a migrated catalog, writes through applyBatch, invariant checks. */
import { applyBatch } from '../../src/catalog/applyBatch.js';
import { migrate } from '../../src/catalog/migrate.js';
import type { MirrorDetail } from '../../src/catalog/views.js';
import { clientExecutor } from '../../src/catalog/sql.js';
import { inTransaction, type Pool } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { parseUpdate, type StateUpdate } from '../../src/update.js';

export const SCHEMA = 'mirrorstate';

export async function migrateCatalog(pool: Pool): Promise<void> {
  await migrate(pool, SCHEMA, createLogger('silent'));
}

export function toUpdate(raw: object): StateUpdate {
  const parsed = parseUpdate(raw);
  if (!parsed.ok) throw new Error(`test update is invalid: ${JSON.stringify(parsed.errors)}`);
  return parsed.value;
}

/** Writes updates the way the consumer does: one applyBatch in one transaction. */
export async function write(pool: Pool, raws: object[]) {
  const updates = raws.map(toUpdate);
  return inTransaction(pool, 'begin', (client) => applyBatch(clientExecutor(client), SCHEMA, updates));
}

/** An ISO timestamp `ms` milliseconds before now (with microseconds, to exercise them). */
export function ago(ms: number, micros = 0): string {
  const iso = new Date(Date.now() - ms).toISOString();
  return `${iso.slice(0, -1)}${String(micros).padStart(3, '0')}Z`;
}

/** Mirrors whose journal_length / journal_oldest_at disagree with their journal rows. */
export async function invariantViolations(pool: Pool): Promise<unknown[]> {
  const { rows } = await pool.query(
    `select m.mirror, m.journal_length, j.n, m.journal_oldest_at, j.oldest
       from ${SCHEMA}.mirrors m
       left join lateral (select count(*)::int as n, min(observed_at) as oldest
                            from ${SCHEMA}.journal j where j.mirror = m.mirror) j on true
      where m.journal_length <> j.n or m.journal_oldest_at is distinct from j.oldest`,
  );
  return rows;
}

/** Where the per-day counts of transitions (migration 0013) differ from `transitions` itself. */
export async function perDayViolations(pool: Pool): Promise<unknown[]> {
  const { rows } = await pool.query(
    `select coalesce(e.day, d.day)::text as day, e.n as expected, d.n as got
       from (select (at at time zone 'UTC')::date as day, count(*) as n from ${SCHEMA}.transitions group by 1) e
       full join (select day, sum(transitions) as n from ${SCHEMA}.transitions_per_day group by day) d on d.day = e.day
      where e.n is distinct from d.n`,
  );
  return rows;
}

/**
 * Why an answer is skewed (its journal metadata and its events are from different moments), or
 * undefined when it is consistent. Only meaningful when the events were not cut by the limit.
 */
export function skew(detail: Pick<MirrorDetail, 'journal'>): string | undefined {
  const { length, oldestAt, events } = detail.journal;
  if (length !== events.length) return `length ${length} but ${events.length} events`;
  let min: string | null = null;
  for (const e of events) if (min === null || e.observedAt < min) min = e.observedAt;
  if (oldestAt !== min) return `oldestAt ${oldestAt} but the oldest event is ${min}`;
  return undefined;
}
