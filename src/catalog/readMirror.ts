/**
 * One mirror with its journal and its latest transitions, all from one snapshot: the journal's
 * length and oldestAt (the mirror row) always describe exactly the events returned with them
 * (when the events are not cut by the limit), however the trimmer and the writer interleave.
 */
import { inTransaction, type Pool } from '../db/pool.js';
import {
  DETAIL_TRANSITIONS, detailStatements, type MirrorDetail, SNAPSHOT_BEGIN, toJournalEvent, toMirrorState, toTransition,
} from './views.js';
import { readTimelines, type TimelineWindow } from './readTimelines.js';
import { toTableView } from './tableFields.js';

export interface ReadMirrorOptions {
  /** Newest journal events to return (0–1000). */
  events: number;
  /** Newest transitions to return. */
  transitions?: number;
  /** The mirror's status timeline over this window, read in the same snapshot. */
  timeline?: TimelineWindow;
}

/** Undefined when no mirror has that name. */
export async function readMirror(pool: Pool, schema: string, mirror: string, options: ReadMirrorOptions): Promise<MirrorDetail | undefined> {
  const sql = detailStatements(schema);
  return inTransaction(pool, SNAPSHOT_BEGIN, async (client) => {
    const { rows: [row] } = await client.query(sql.mirror, [mirror]);
    if (!row) return undefined;
    const events = await client.query(sql.events, [mirror, options.events]);
    const transitions = await client.query(sql.transitions, [mirror, options.transitions ?? DETAIL_TRANSITIONS]);
    const mirrorTables = await client.query(sql.tables, [mirror]);
    const timeline = options.timeline ? (await readTimelines(client, schema, [mirror], options.timeline)).get(mirror) : undefined;
    const state = toMirrorState(row);
    return {
      ...(options.timeline ? { timeline } : {}),
      mirror: state,
      tables: mirrorTables.rows.map(toTableView),
      journal: { length: state.journalLength, oldestAt: state.journalOldestAt, events: events.rows.map(toJournalEvent) },
      transitions: transitions.rows.map(toTransition),
    };
  });
}
