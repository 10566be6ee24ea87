/** Every mirror's current state, in mirror order (`collate "C"`), from one snapshot. */
import { inTransaction, type Pool } from '../db/pool.js';
import { MIRROR_COLUMNS, type MirrorState, SNAPSHOT_BEGIN, toMirrorState } from './views.js';
import { tables } from './sql.js';

/** Mirrors per page of readMirrorPages: about 0.5 MB of JSON, a few ms of the event loop. */
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
