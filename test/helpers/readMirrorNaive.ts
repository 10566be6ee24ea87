/**
 * A deliberately WRONG reader, kept as the control of the consistency tests and the baseline of the
 * reads bench: the same statements as readMirror, but each on its own at READ COMMITTED, so the
 * mirror row (journal metadata) and the journal rows may come from different moments (read skew).
 * Never serve it.
 */
import type { Pool } from '../../src/db/pool.js';
import { DETAIL_TRANSITIONS, detailStatements, type MirrorDetail, toJournalEvent, toMirrorState, toTransition } from '../../src/catalog/views.js';
import { toTableView } from '../../src/catalog/tableFields.js';
import type { ReadMirrorOptions } from '../../src/catalog/readMirror.js';

export async function readMirrorNaive(
  pool: Pool, schema: string, mirror: string, options: ReadMirrorOptions & { pauseMs?: number },
): Promise<MirrorDetail | undefined> {
  const sql = detailStatements(schema);
  const { rows: [row] } = await pool.query(sql.mirror, [mirror]);
  if (!row) return undefined;
  // Widens the window between the two moments, so the tests see the skew reliably.
  if (options.pauseMs) await pool.query('select pg_sleep($1::float8)', [options.pauseMs / 1000]);
  const events = await pool.query(sql.events, [mirror, options.events]);
  const transitions = await pool.query(sql.transitions, [mirror, options.transitions ?? DETAIL_TRANSITIONS]);
  const mirrorTables = await pool.query(sql.tables, [mirror]);
  const state = toMirrorState(row);
  return {
    mirror: state,
    tables: mirrorTables.rows.map(toTableView),
    journal: { length: state.journalLength, oldestAt: state.journalOldestAt, events: events.rows.map(toJournalEvent) },
    transitions: transitions.rows.map(toTransition),
  };
}
