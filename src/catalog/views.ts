/**
 * What the read API and `mirrorstate status` answer, and the SQL that selects it. Timestamps are
 * read as RFC 3339 UTC text with microseconds (UTC_MICROS), never as a millisecond Date.
 *
 * Every read that spans more than one statement runs in one SNAPSHOT transaction: REPEATABLE READ
 * gives all its statements the same snapshot, so a mirror's journal metadata and its journal rows
 * are always from the same moment even while the trimmer deletes. READ ONLY keeps it cheap; callers
 * keep it short, because an open snapshot holds back vacuum.
 */
import { MIRROR_FIELD_LIST, MIRROR_FIELD_SELECT, type MirrorFieldValues } from './mirrorFields.js';
import type { MirrorTimeline } from './readTimelines.js';
import { tables, UTC_MICROS } from './sql.js';
import { TABLE_SELECT, type TableView } from './tableFields.js';

export const SNAPSHOT_BEGIN = 'begin isolation level repeatable read read only';

export const DEFAULT_EVENTS = 20;
export const MAX_EVENTS = 1000;
export const DETAIL_TRANSITIONS = 20;
export const DEFAULT_TRANSITIONS_PAGE = 100;
export const MAX_TRANSITIONS_PAGE = 1000;

export interface ErrorView {
  class: string;
  message: string;
}

/** A mirror as the read API answers it; the reported values (mirrorFields.ts) between `seq` and `error`. */
export interface MirrorState extends MirrorFieldValues {
  mirror: string;
  status: string;
  statusSince: string;
  observedAt: string;
  seq: number;
  error: ErrorView | null;
  dropped: boolean;
  droppedAt: string | null;
  transitionsTotal: number;
  journalLength: number;
  journalOldestAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface JournalEvent {
  id: number;
  observedAt: string;
  seq: number;
  status: string;
  applied: boolean;
  payload: unknown;
  recordedAt: string;
}

export interface TransitionView {
  id: number;
  from: string | null;
  to: string;
  at: string;
  seq: number;
  workflowId: string | null;
  error: ErrorView | null;
  recordedAt: string;
}

export interface MirrorDetail {
  mirror: MirrorState;
  /** Its current tables by name (byte order), from the same snapshot as the rest. */
  tables: TableView[];
  journal: { length: number; oldestAt: string | null; events: JournalEvent[] };
  transitions: TransitionView[];
  /** When asked for: the status timeline (undefined when the mirror has no transition up to its end). */
  timeline?: MirrorTimeline | undefined;
}

function errorView(errorClass: string | null, message: string | null): ErrorView | null {
  return errorClass === null && message === null ? null : { class: errorClass ?? 'unknown', message: message ?? '' };
}

export const MIRROR_COLUMNS = `mirror, status, ${UTC_MICROS('status_since')} as status_since,
  ${UTC_MICROS('observed_at')} as observed_at, seq, ${MIRROR_FIELD_SELECT},
  error_class, error_message, ${UTC_MICROS('dropped_at')} as dropped_at, transitions_total,
  journal_length, ${UTC_MICROS('journal_oldest_at')} as journal_oldest_at, ${UTC_MICROS('created_at')} as created_at,
  ${UTC_MICROS('updated_at')} as updated_at`;

/* eslint-disable @typescript-eslint/no-explicit-any -- rows come from the statements in this file */
export function toMirrorState(r: any): MirrorState {
  const state: any = {
    mirror: r.mirror,
    status: r.status,
    statusSince: r.status_since,
    observedAt: r.observed_at,
    seq: Number(r.seq),
  };
  for (const f of MIRROR_FIELD_LIST) {
    const value = r[f.column];
    state[f.name] = value !== null && f.sql === 'bigint' ? Number(value) : value;
  }
  state.error = errorView(r.error_class, r.error_message);
  state.dropped = r.dropped_at !== null;
  state.droppedAt = r.dropped_at;
  state.transitionsTotal = Number(r.transitions_total);
  state.journalLength = r.journal_length;
  state.journalOldestAt = r.journal_oldest_at;
  state.createdAt = r.created_at;
  state.updatedAt = r.updated_at;
  return state as MirrorState;
}

export const EVENT_COLUMNS = `id, ${UTC_MICROS('observed_at')} as observed_at, seq, status, applied, payload,
  ${UTC_MICROS('recorded_at')} as recorded_at`;

export function toJournalEvent(r: any): JournalEvent {
  return {
    id: Number(r.id),
    observedAt: r.observed_at,
    seq: Number(r.seq),
    status: r.status,
    applied: r.applied,
    payload: r.payload,
    recordedAt: r.recorded_at,
  };
}

export const TRANSITION_COLUMNS = `id, from_status, to_status, ${UTC_MICROS('at')} as at, seq, workflow_id, error_class,
  error_message, ${UTC_MICROS('recorded_at')} as recorded_at`;

export function toTransition(r: any): TransitionView {
  return {
    id: Number(r.id),
    from: r.from_status,
    to: r.to_status,
    at: r.at,
    seq: Number(r.seq),
    workflowId: r.workflow_id,
    error: errorView(r.error_class, r.error_message),
    recordedAt: r.recorded_at,
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** The three statements of a mirror's detail; the snapshot reader and the naive control share them. */
export function detailStatements(schema: string) {
  const t = tables(schema);
  return {
    mirror: `select ${MIRROR_COLUMNS} from ${t.mirrors} where mirror = $1::text`,
    events: `select ${EVENT_COLUMNS} from ${t.journal} where mirror = $1::text
              order by observed_at desc, seq desc limit $2::int`,
    transitions: `select ${TRANSITION_COLUMNS} from ${t.transitions} where mirror = $1::text
                   order by id desc limit $2::int`,
    tables: `select ${TABLE_SELECT} from ${t.mirrorTables} where mirror = $1::text order by table_name collate "C"`,
  };
}
