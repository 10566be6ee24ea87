/**
 * A page of one mirror's transitions, newest first, below `before` (an id). Within a mirror, ids
 * grow in commit order (writers of a mirror hold its row lock while they insert), so walking pages
 * with `before = next` visits every transition committed before the walk began exactly once, even
 * while new ones are written.
 */
import { inTransaction, type Pool } from '../db/pool.js';
import { SNAPSHOT_BEGIN, toTransition, TRANSITION_COLUMNS, type TransitionView } from './views.js';
import { tables } from './sql.js';

export interface TransitionsPage {
  transitions: TransitionView[];
  /** The `before` of the next page, or null when this page reaches the oldest transition. */
  next: number | null;
}

/** Undefined when no mirror has that name. */
export async function readTransitions(
  pool: Pool, schema: string, mirror: string, options: { limit: number; before?: number },
): Promise<TransitionsPage | undefined> {
  const t = tables(schema);
  return inTransaction(pool, SNAPSHOT_BEGIN, async (client) => {
    const known = await client.query(`select 1 from ${t.mirrors} where mirror = $1::text`, [mirror]);
    if (known.rows.length === 0) return undefined;
    const { rows } = await client.query(
      `select ${TRANSITION_COLUMNS} from ${t.transitions}
        where mirror = $1::text and ($2::bigint is null or id < $2::bigint)
        order by id desc limit $3::int`,
      [mirror, options.before ?? null, options.limit + 1],
    );
    const page = rows.slice(0, options.limit).map(toTransition);
    const last = page[page.length - 1];
    return { transitions: page, next: rows.length > options.limit && last ? last.id : null };
  });
}
