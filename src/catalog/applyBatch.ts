/**
 * Writes one batch of valid updates into the catalog, inside the caller's transaction.
 *
 * The rules (docs/message.md: Ordering, Idempotency, Applying an update), and how this file keeps them:
 * - version = (observedAt, seq). The current state of a mirror is its highest accepted version.
 *   Versions are compared here in JavaScript on canonical microsecond strings (see update.ts) that
 *   were read from the catalog as text under the mirror's row lock, so no `Date` rounding enters.
 * - idempotency key = (mirror, observedAt, seq). A journaled key is never newer than the current
 *   version (the journal and the version move in one transaction), so a duplicate is never applied:
 *   an update newer than the version is journaled by a plain insert (its key cannot be there; if
 *   it were, the unique constraint fails the batch), and among the stale ones the unique
 *   constraint decides what is a duplicate (`on conflict do nothing returning`).
 * - Updates newer than the current version are applied in version order; every status change among
 *   them is a transition, so a batch gives the same result as applying its updates one by one.
 * - The journal invariant (journal_length, journal_oldest_at) is moved in SQL by exactly the rows the
 *   journal insert returned, in the same statement.
 *
 * Lock protocol: before anything else, the batch creates the rows of mirrors it has never seen and
 * locks every row it will touch, both in mirror order (`collate "C"`), as the trimmer does. Two
 * batches (or a batch and the trimmer) on the same mirrors therefore queue up instead of
 * deadlocking, and the previous status is always read under the lock.
 *
 * Statements: two round trips per batch whatever its size when every mirror already has a row (the
 * steady state), three when some are new, every one set-based: a round trip is most of a small
 * batch's time (docs/performance.md, "Write path: figures behind choices").
 */
import type { StateUpdate, Status, TableEntry } from '../update.js';
import { MIRROR_FIELD_LIST, MIRROR_FIELD_SELECT, type MirrorFieldColumns } from './mirrorFields.js';
import { type Executor, tables, UTC_MICROS } from './sql.js';
import { TABLE_COLUMN_TYPES, TABLE_COLUMNS, TABLE_RECORD_DEFINITION, tableColumns, tableRow } from './tableFields.js';

export interface BatchOutcome {
  applied: number;
  stale: number;
  duplicate: number;
  transitions: number;
}

/** A mirror's row as this file reads, folds and writes it: its columns, by their names. */
type MirrorRow = {
  mirror: string;
  status: Status;
  status_since: string;
  observed_at: string;
  seq: number;
  error_class: string | null;
  error_message: string | null;
  dropped_at: string | null;
  transitions_total: number;
  tables_reported: boolean;
} & MirrorFieldColumns;

interface Transition {
  mirror: string;
  from: Status | null;
  to: Status;
  at: string;
  seq: number;
  workflowId: string | null;
  errorClass: string | null;
  errorMessage: string | null;
}

/** The version order (observedAt, then seq) of two versions given field by field: no object to build. */
function versionOrder(observedAtA: string, seqA: number, observedAtB: string, seqB: number): number {
  if (observedAtA !== observedAtB) return observedAtA < observedAtB ? -1 : 1;
  return seqA - seqB;
}

export function compareVersions(a: { observedAt: string; seq: number }, b: { observedAt: string; seq: number }): number {
  return versionOrder(a.observedAt, a.seq, b.observedAt, b.seq);
}

export function idempotencyKey(u: { mirror: string; observedAt: string; seq: number }): string {
  return `${u.mirror}\u0000${u.observedAt}\u0000${u.seq}`;
}

const ROW_COLUMNS = `mirror, status, ${UTC_MICROS('status_since')} as status_since, ${UTC_MICROS('observed_at')} as observed_at,
  seq, ${MIRROR_FIELD_SELECT}, error_class, error_message, ${UTC_MICROS('dropped_at')} as dropped_at, transitions_total, tables_reported`;

// The reported values (mirrorFields.ts) as parallel arrays: the fold walks them once per applied update.
const FIELD_NAMES = MIRROR_FIELD_LIST.map((f) => f.name);
const FIELD_COLUMNS = MIRROR_FIELD_LIST.map((f) => f.column);
const FIELD_CLEARED = MIRROR_FIELD_LIST.map((f) => f.omitted === 'cleared');
const NO_FIELDS = Object.fromEntries(FIELD_COLUMNS.map((column) => [column, null])) as MirrorFieldColumns;

/** A mirror's row before its first update: every field but the version unknown. */
function blankRow(mirror: string, u: StateUpdate): MirrorRow {
  return {
    mirror, status: u.status, status_since: u.observedAt, observed_at: u.observedAt, seq: u.seq,
    ...NO_FIELDS, error_class: null, error_message: null, dropped_at: null, transitions_total: 0, tables_reported: false,
  };
}

/** Sets the reported values of `u` on the row: what it omits is kept or cleared, as mirrorFields.ts declares. */
function takeFields(row: MirrorRow, u: StateUpdate): void {
  const from = u as unknown as Record<string, string | number | null>;
  const to = row as unknown as Record<string, string | number | null>;
  for (let k = 0; k < FIELD_NAMES.length; k++) {
    const value = from[FIELD_NAMES[k]!]!;
    if (value !== null || FIELD_CLEARED[k]) to[FIELD_COLUMNS[k]!] = value;
  }
}

/**
 * Folds one mirror's updates (version order, no key twice) into its row; returns the transitions
 * and where the applied updates start. The versions strictly increase, so once one update is newer
 * than the mirror's version every later one is too: the applied updates are a suffix of the list.
 * The row read under the lock is never modified: the first applied update copies it, and later ones
 * change that copy in place: a batch of 100-update jobs folds many updates a mirror, and a new row
 * object per update was a noticeable share of a large batch's time, with the row locks held.
 */
function fold(row: MirrorRow | null, mirror: string, updates: StateUpdate[]) {
  const transitions: Transition[] = [];
  let firstApplied = updates.length;
  let current = row;
  let working: MirrorRow | null = null;
  // The newest applied update that lists tables decides the mirror's whole set (null: the set stays).
  let tableSet: TableEntry[] | null = null;
  for (let i = 0; i < updates.length; i++) {
    const u = updates[i]!;
    if (current !== null && versionOrder(u.observedAt, u.seq, current.observed_at, current.seq) <= 0) continue;
    if (working === null) firstApplied = i;
    const from = current?.status ?? null;
    const changed = current === null || current.status !== u.status;
    working ??= current === null ? blankRow(mirror, u) : { ...current };
    working.status = u.status;
    if (changed) working.status_since = u.observedAt;
    working.observed_at = u.observedAt;
    working.seq = u.seq;
    takeFields(working, u);
    if (u.tables !== null) tableSet = u.tables;
    working.error_class = u.error?.class ?? null;
    working.error_message = u.error?.message ?? null;
    working.dropped_at = u.dropped ? u.observedAt : null;
    if (changed) {
      working.transitions_total += 1;
      transitions.push({
        mirror, from, to: u.status, at: u.observedAt, seq: u.seq,
        workflowId: working.workflow_id, errorClass: working.error_class, errorMessage: working.error_message,
      });
    }
    current = working;
  }
  return { row: current, firstApplied, transitions, tableSet };
}

/** A mirror's row for step 4; `changed` when an update was applied (else only its journal metadata may move). */
interface NextRow {
  row: MirrorRow;
  changed: boolean;
}

/**
 * Step 4's inputs travel as JSON documents (one parameter each) rather than ~30 typed
 * arrays: node-pg encodes a text array element by element with regex escapes, where
 * JSON.stringify of the whole list is a fast path and PostgreSQL's json_to_recordset reads it back
 * typed in one pass. Timestamps stay canonical microsecond strings, so no precision is lost on the way.
 * The journal's updates go as two documents, zipped back in order by ROWS FROM: their keys, and
 * their payloads, each made jsonb on its own: read as one jsonb document, a batch carrying tables
 * cost PostgreSQL several times more (docs/performance.md, "Write path: figures behind choices").
 */
interface JournalDocuments {
  keys: string;
  payloads: string;
}

function journalJson(journal: StateUpdate[]): JournalDocuments {
  return {
    keys: JSON.stringify(journal.map((u) => ({ mirror: u.mirror, observed_at: u.observedAt, seq: u.seq, status: u.status }))),
    payloads: JSON.stringify(journal.map((u) => u.payload)),
  };
}

/** The journal rows of step 4 from the two documents, as `x(mirror, observed_at, seq, status, payload)`. */
function journalRows(documents: JournalDocuments, param: (value: unknown) => string): string {
  return `rows from (
           json_to_recordset(${param(documents.keys)}::json) as (mirror text, observed_at timestamptz, seq bigint, status text),
           json_array_elements(${param(documents.payloads)}::json)
         ) as x(mirror, observed_at, seq, status, payload)`;
}

/**
 * The documents without a jsonb column (the transitions, the mirrors' new rows) leave absent values
 * out rather than write them as null (json_to_recordset reads a missing key as null), and go as
 * `json`: building the binary form of the whole document first buys nothing. A third of the
 * transitions' bytes and nearly half the rows' were nulls; both inserting and PostgreSQL's CPU came
 * out cheaper (docs/performance.md).
 */
function transitionsJson(transitions: Transition[]): string {
  return JSON.stringify(
    transitions.map((x) => ({
      mirror: x.mirror, from_status: x.from ?? undefined, to_status: x.to, at: x.at, seq: x.seq,
      workflow_id: x.workflowId ?? undefined, error_class: x.errorClass ?? undefined, error_message: x.errorMessage ?? undefined,
    })),
  );
}

/** The rows of sets replacing earlier ones (tableFields.ts), absent values left out as in the other documents. */
function tablesJson(sets: Map<string, TableEntry[]>): string {
  const rows: Record<string, unknown>[] = [];
  for (const [mirror, entries] of sets) for (const e of entries) rows.push(tableRow(mirror, e));
  return JSON.stringify(rows);
}

function rowsJson(rows: Iterable<NextRow>): string {
  return JSON.stringify(
    Array.from(rows, ({ row: r, changed }) => {
      const doc: Record<string, unknown> = { mirror: r.mirror, status: r.status, status_since: r.status_since, observed_at: r.observed_at, seq: r.seq };
      const values = r as unknown as Record<string, unknown>;
      for (const column of FIELD_COLUMNS) doc[column] = values[column] ?? undefined;
      doc.error_class = r.error_class ?? undefined;
      doc.error_message = r.error_message ?? undefined;
      doc.dropped_at = r.dropped_at ?? undefined;
      doc.transitions_total = r.transitions_total;
      doc.changed = changed;
      return doc;
    }),
  );
}

// The last statement's row update, from the declared fields: the columns it sets and how it reads them.
const SET_FIELDS = FIELD_COLUMNS.map((column) => `${column} = u.${column}`).join(', ');
const ROW_DOCUMENT_FIELDS = MIRROR_FIELD_LIST.map((f) => `${f.column} ${f.sql}`).join(', ');

/** The batch's table sets by mirror: those replacing a set the mirror reported before, and first ones. */
interface TableSets {
  replacing: Map<string, TableEntry[]>;
  first: Map<string, TableEntry[]>;
}

/**
 * The last statement's table writes, appended only when the batch carries a table set: most
 * batches carry none, and those then plan and run no table step at all. `param` adds a parameter
 * and answers its placeholder.
 * - A set that replaces an earlier one is mostly what it was (a PeerDB mirror's tables, one of them
 *   moved): a row whose values are unchanged is left as it is, not rewritten; a new one is a plain
 *   insert; one the set no longer lists is deleted. Its rows go as a JSON document, which the
 *   planner takes for a short list (json_to_recordset's estimate): it then probes the primary key
 *   per row. Typed arrays through `unnest` tell it their length, and it joined 10,000 rows to the
 *   whole of mirror_tables; an upsert, which probes per row whatever the estimate, locks every
 *   unchanged row it leaves, and a set that moved little took longer (docs/performance.md, "Write
 *   path: figures behind choices").
 * - A mirror's first set (tables_reported still false, read under its row lock) is a plain insert,
 *   probing for nothing, its rows one array literal per column through `unnest` (tableFields.ts):
 *   PostgreSQL reads those several times faster than json_to_recordset reads objects, and they are
 *   half the bytes. A mirror has table rows only once it has reported tables, because every set is
 *   written in the statement that sets tables_reported (and migration 0012 set it for the mirrors
 *   that had rows). Should that ever break, the insert fails on the primary key rather than keep a
 *   table of an older set, as the journal's plain insert does.
 * Neither can race another batch: the mirrors' rows are locked (step 2) before this statement
 * runs, and the statement's snapshot sees every set committed before the lock was granted.
 */
function tableCtes(schema: string, sets: TableSets, param: (value: unknown) => string): string {
  const t = tables(schema);
  const columns = TABLE_COLUMNS.join(', ');
  let ctes = '';
  if (sets.replacing.size > 0) {
    ctes += `, nt as (
       select * from json_to_recordset(${param(tablesJson(sets.replacing))}::json)
         as x(mirror text, table_name text, ${TABLE_RECORD_DEFINITION})
     ), tdel as (
       delete from ${t.mirrorTables} as mt
        where mt.mirror = any(${param([...sets.replacing.keys()])}::text[])
          and not exists (select 1 from nt where nt.mirror = mt.mirror and nt.table_name = mt.table_name)
     ), tupd as (
       update ${t.mirrorTables} as mt set ${TABLE_COLUMNS.map((c) => `${c} = nt.${c}`).join(', ')}, updated_at = now()
         from nt
        where mt.mirror = nt.mirror and mt.table_name = nt.table_name
          and (${TABLE_COLUMNS.map((c) => `mt.${c}`).join(', ')}) is distinct from (${TABLE_COLUMNS.map((c) => `nt.${c}`).join(', ')})
     ), tins as (
       insert into ${t.mirrorTables} (mirror, table_name, ${columns})
       select mirror, table_name, ${columns} from nt
        where not exists (select 1 from ${t.mirrorTables} as mt where mt.mirror = nt.mirror and mt.table_name = nt.table_name)
     )`;
  }
  if (sets.first.size > 0) {
    const arrays = tableColumns(sets.first).map((literal, i) => `${param(literal)}::${TABLE_COLUMN_TYPES[i]}[]`);
    ctes += `, tfirst as (
       insert into ${t.mirrorTables} (mirror, table_name, ${columns})
       select mirror, table_name, ${columns} from unnest(${arrays.join(', ')}) as x(mirror, table_name, ${columns})
     )`;
  }
  return ctes;
}

export async function applyBatch(db: Executor, schema: string, batch: StateUpdate[]): Promise<BatchOutcome> {
  const t = tables(schema);
  const outcome: BatchOutcome = { applied: 0, stale: 0, duplicate: 0, transitions: 0 };

  // Same key twice in one batch: keep the first, count the rest as duplicates.
  const byKey = new Map<string, StateUpdate>();
  for (const u of batch) {
    const key = idempotencyKey(u);
    if (byKey.has(key)) outcome.duplicate++;
    else byKey.set(key, u);
  }
  if (byKey.size === 0) return outcome;
  const byMirror = new Map<string, StateUpdate[]>();
  for (const u of byKey.values()) {
    const list = byMirror.get(u.mirror);
    if (list) list.push(u);
    else byMirror.set(u.mirror, [u]);
  }
  const mirrors = [...byMirror.keys()];
  // What needs no catalog state is done before the row locks are taken, out of the time a
  // concurrent batch on the same mirrors waits: each mirror's updates in version order, and the
  // journal document for the common case in which every update is applied (one JSON.stringify of
  // the whole list; 20,000 small ones cost more than they would save).
  const journal: StateUpdate[] = [];
  for (const updates of byMirror.values()) {
    updates.sort(compareVersions);
    for (const u of updates) journal.push(u);
  }
  const journalIfAllApplied = journalJson(journal);

  // 1+2, fast path: when every mirror of the batch already has a row (the steady state), lock them
  //    all in mirror order in one statement. The count is an uncorrelated subquery, a one-time
  //    filter evaluated before any row is locked: when a mirror is missing nothing is locked and the
  //    batch takes the two statements below, so the lock order is never broken. Rows are never
  //    deleted, so a row counted here is still there to lock. Saves a round trip.
  let locked = await db.executeSql(
    `select ${ROW_COLUMNS} from ${t.mirrors}
      where mirror = any($1::text[])
        and (select count(*) from ${t.mirrors} where mirror = any($1::text[])) = cardinality($1::text[])
      order by mirror collate "C" for update`,
    [mirrors],
  );
  let isNew = new Set<string>();
  if (locked.rows.length === 0) {
    // 1. Rows for mirrors never seen, in lock order. A placeholder never commits: this same
    //    transaction overwrites it below, because a new mirror's first update is always applied.
    //    Kept apart from the lock below: one statement's snapshot cannot see a row another batch
    //    committed after it started, which `on conflict do nothing` then skips without locking.
    const created = await db.executeSql(
      `insert into ${t.mirrors} (mirror, status, status_since, observed_at, seq)
       select m, 'unknown', '-infinity', '-infinity', -1
         from unnest($1::text[]) as m
        where not exists (select 1 from ${t.mirrors} where mirror = m)
        order by m collate "C"
       on conflict (mirror) do nothing
       returning mirror`,
      [mirrors],
    );
    isNew = new Set<string>(created.rows.map((r: { mirror: string }) => r.mirror));

    // 2. Lock every row in mirror order and read the current state under the lock.
    locked = await db.executeSql(
      `select ${ROW_COLUMNS} from ${t.mirrors} where mirror = any($1::text[]) order by mirror collate "C" for update`,
      [mirrors],
    );
  }
  const rows = new Map<string, MirrorRow>(locked.rows.map((r: MirrorRow) => [r.mirror, r]));

  // 3. Decide, per mirror in version order, what is applied and what is a transition.
  const fresh: StateUpdate[] = [];
  const seen: StateUpdate[] = [];
  const transitions: Transition[] = [];
  const nextRows = new Map<string, NextRow>();
  const tableSets: TableSets = { replacing: new Map(), first: new Map() };
  for (const [mirror, updates] of byMirror) {
    const result = fold(isNew.has(mirror) ? null : (rows.get(mirror) ?? null), mirror, updates);
    for (let i = 0; i < updates.length; i++) (i < result.firstApplied ? seen : fresh).push(updates[i]!);
    for (const x of result.transitions) transitions.push(x);
    if (result.tableSet !== null) (rows.get(mirror)?.tables_reported ? tableSets.replacing : tableSets.first).set(mirror, result.tableSet);
    const applied = result.firstApplied < updates.length;
    // Every mirror of the batch is a candidate for step 4: a stale-only one keeps its state but its
    // journal metadata may still move. Step 4 writes only rows that changed or whose journal grew,
    // so a redelivery leaves its mirror's row (updated_at included) untouched.
    const row = applied ? result.row : rows.get(mirror);
    if (row) nextRows.set(mirror, { row, changed: applied });
  }

  // 4. One statement for the rest: journal every update, append the transitions, and write each
  //    mirror's new row, with the journal metadata moved by exactly the rows the journal inserts
  //    returned. Applied updates are newer than their mirror's version, read under its lock, and a
  //    journaled key is never newer than that version: they cannot be duplicates, so they go in
  //    as a plain insert. Only stale ones may be redeliveries, and only they pay for `on conflict`
  //    (a speculative insertion, dearer than a plain one). Should the invariant
  //    ever break, the plain insert fails on the unique key rather than journal a key twice.
  //    A mirror whose applied updates listed tables gets that set in the same statement: its other
  //    tables deleted, the listed ones written whole (a field an entry leaves out is null, nothing
  //    carried over). The two touch disjoint rows, so they can share the statement. Its row is
  //    written too (an applied update), which is what the /metrics change feed follows, and
  //    says from then on that the mirror has reported tables (an empty list included). A batch
  //    without a table set (most of them) leaves the table steps out of the statement (tableCtes):
  //    planned and run empty, they would add to every statement's time (docs/performance.md, "Write
  //    path: figures behind choices"). The transitions are also counted per UTC day, into this
  //    connection's row of transitions_per_day (docs/catalog.md): a connection runs one
  //    transaction at a time, so concurrent batches never wait on one counter row; a batch without
  //    transitions leaves it out.
  const params: unknown[] = [transitionsJson(transitions), rowsJson(nextRows.values())];
  const param = (value: unknown) => `$${params.push(value)}`;
  const freshRows = journalRows(seen.length === 0 ? journalIfAllApplied : journalJson(fresh), param);
  const seenRows = journalRows(journalJson(seen), param);
  const firstReported = tableSets.first.size === 0 ? '' : `tables_reported = m.tables_reported or m.mirror = any(${param([...tableSets.first.keys()])}::text[]),`;
  const tableSteps = tableCtes(schema, tableSets, param);
  const { rows: inserted } = await db.executeSql(
    `with fresh as (
       insert into ${t.journal} (mirror, observed_at, seq, status, applied, payload)
       select mirror, observed_at, seq, status, true, payload::jsonb
         from ${freshRows}
       returning mirror, observed_at, applied
     ), seen as (
       insert into ${t.journal} (mirror, observed_at, seq, status, applied, payload)
       select mirror, observed_at, seq, status, false, payload::jsonb
         from ${seenRows}
       on conflict on constraint journal_idempotency_key do nothing
       returning mirror, observed_at, applied
     ), j as (
       select * from fresh union all select * from seen
     ), added as (
       select mirror, count(*)::integer as n, min(observed_at) as oldest from j group by mirror
     ), x as (
       select * from json_to_recordset($1::json)
         as x(mirror text, from_status text, to_status text, at timestamptz, seq bigint, workflow_id text,
              error_class text, error_message text)
     ), tr as (
       insert into ${t.transitions} (mirror, from_status, to_status, at, seq, workflow_id, error_class, error_message)
       select mirror, from_status, to_status, at, seq, workflow_id, error_class, error_message from x
     ), ${transitions.length === 0 ? '' : `tday as (
       insert into ${t.transitionsPerDay} as d (day, backend, transitions)
       select (at at time zone 'UTC')::date, pg_backend_pid(), count(*) from x group by 1 order by 1
       on conflict (day, backend) do update set transitions = d.transitions + excluded.transitions
     ), `}up as (
       update ${t.mirrors} as m set
         status = u.status, status_since = u.status_since, observed_at = u.observed_at, seq = u.seq,
         ${SET_FIELDS},
         error_class = u.error_class, error_message = u.error_message, dropped_at = u.dropped_at,
         transitions_total = u.transitions_total,
         ${firstReported}
         journal_length = m.journal_length + coalesce(added.n, 0),
         journal_oldest_at = least(m.journal_oldest_at, added.oldest),
         updated_at = now()
       from json_to_recordset($2::json)
         as u(mirror text, status text, status_since timestamptz, observed_at timestamptz, seq bigint,
              ${ROW_DOCUMENT_FIELDS}, error_class text, error_message text, dropped_at timestamptz,
              transitions_total bigint, changed boolean)
       left join added on added.mirror = u.mirror
       where m.mirror = u.mirror and (u.changed or added.n is not null)
     )${tableSteps}
     select mirror, applied from j`,
    params,
  );
  for (const r of inserted as { applied: boolean }[]) {
    if (r.applied) outcome.applied++;
    else outcome.stale++;
  }
  outcome.duplicate += byKey.size - inserted.length;
  outcome.transitions = transitions.length;
  return outcome;
}
