/** Every mirror's current state, in mirror order (`collate "C"`), from one snapshot. */
import { inTransaction, type Pool } from '../db/pool.js';
import { MIRROR_COLUMNS, type MirrorState, SNAPSHOT_BEGIN, toMirrorState } from './views.js';
import { tables } from './sql.js';

/**
 * Mirrors per page of readMirrorPages: a page is small beside the fleet and serializes in a short
 * turn of the event loop (docs/performance.md, "The full list as one JSON document").
 */
export const MIRRORS_PAGE = 1000;

function listing(schema: string, dropped: boolean): string {
  return `select ${MIRROR_COLUMNS} from ${tables(schema).mirrors} ${dropped ? '' : 'where dropped_at is null'} order by mirror collate "C"`;
}

/** In one statement: for callers that want the whole list at once (`mirrorstate status`). */
export async function readMirrors(pool: Pool, schema: string, options: { dropped?: boolean } = {}): Promise<MirrorState[]> {
  const { rows } = await pool.query(listing(schema, options.dropped === true));
  return rows.map(toMirrorState);
}

/**
 * The same list page by page, for answers that stream it: a cursor in a snapshot transaction, so
 * every page comes from the one snapshot the first did (the sort runs once, `collate "C"` has no
 * index to walk), and `onPage` is awaited before the next page is fetched: a slow reader holds one
 * page in memory, never the fleet. The caller keeps `onPage` bounded in time, since the open
 * snapshot holds back vacuum.
 */
export async function readMirrorPages(
  pool: Pool, schema: string, options: { dropped?: boolean }, onPage: (page: MirrorState[]) => Promise<void>,
): Promise<void> {
  await inTransaction(pool, SNAPSHOT_BEGIN, async (client) => {
    await client.query(`declare mirror_pages no scroll cursor for ${listing(schema, options.dropped === true)}`);
    for (;;) {
      const { rows } = await client.query(`fetch ${MIRRORS_PAGE} from mirror_pages`);
      if (rows.length > 0) await onPage(rows.map(toMirrorState));
      if (rows.length < MIRRORS_PAGE) return;
    }
  });
}

/** Most mirrors one page of GET /api/v1/mirrors?limit= may hold. */
export const MAX_MIRRORS_PAGE = 1000;

export interface MirrorKeysetPage {
  mirrors: MirrorState[];
  /** The name to pass as `after` for the next page; null on the last page. */
  next: string | null;
}

/**
 * One page of the list by keyset on the name in byte order (`collate "C"`, the unpaged list's
 * order): the mirrors after `after`, at most `limit`. One statement, so one snapshot; reading one row
 * beyond the page tells whether another follows. The index on `mirror collate "C"` (migration 0008)
 * makes each page a range scan whatever the database's collation.
 */
export async function readMirrorKeysetPage(
  pool: Pool, schema: string, options: { dropped?: boolean; after?: string; limit: number },
): Promise<MirrorKeysetPage> {
  const where = [options.dropped === true ? null : 'dropped_at is null', options.after === undefined ? null : 'mirror collate "C" > $2::text']
    .filter((c) => c !== null);
  const { rows } = await pool.query(
    `select ${MIRROR_COLUMNS} from ${tables(schema).mirrors} ${where.length > 0 ? `where ${where.join(' and ')}` : ''}
      order by mirror collate "C" limit $1::int`,
    options.after === undefined ? [options.limit + 1] : [options.limit + 1, options.after],
  );
  const more = rows.length > options.limit;
  const mirrors = (more ? rows.slice(0, options.limit) : rows).map(toMirrorState);
  return { mirrors, next: more ? (mirrors.at(-1)?.mirror ?? null) : null };
}
