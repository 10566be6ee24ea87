/**
 * Deliberately WRONG readers, kept as the controls of the consistency tests and the baseline of the
 * reads bench: the same statements as readMirror, but each on its own at READ COMMITTED, so the
 * mirror row (journal metadata) and the journal rows may come from different moments (read skew);
 * and a /metrics read of the mirrors and their tables in two statements (scrapeNaive). Never serve them.
 */
import type { Pool } from '../../src/db/pool.js';
import { DETAIL_TRANSITIONS, detailStatements, type MirrorDetail, toJournalEvent, toMirrorState, toTransition } from '../../src/catalog/views.js';
import { toTableView } from '../../src/catalog/tableFields.js';
import type { ReadMirrorOptions } from '../../src/catalog/readMirror.js';
import { tables } from '../../src/catalog/sql.js';
import { MIRROR_FAMILIES } from '../../src/metrics/families.js';
import { mirrorRowColumns, type MirrorRow } from '../../src/metrics/readMirrorRows.js';
import { type Bucket, MirrorTextCache } from '../../src/metrics/textCache.js';

export async function readMirrorNaive(
  pool: Pool, schema: string, mirror: string, options: ReadMirrorOptions & { pauseMs?: number; between?: () => Promise<unknown> },
): Promise<MirrorDetail | undefined> {
  const sql = detailStatements(schema);
  const { rows: [row] } = await pool.query(sql.mirror, [mirror]);
  if (!row) return undefined;
  // Widens the window between the two moments, so the tests see the skew reliably.
  if (options.pauseMs) await pool.query('select pg_sleep($1::float8)', [options.pauseMs / 1000]);
  // Or makes it certain: a test commits a write there.
  await options.between?.();
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

/**
 * The same wrong design for /metrics: every live mirror's row in one statement, then its tables in
 * another (each its own READ COMMITTED snapshot), rendered by the real families. `between` runs
 * between the two statements (a test commits a write there, so the skew is certain, not timed).
 * Answers the per-mirror sample lines, without HELP and TYPE.
 */
export async function scrapeNaive(pool: Pool, schema: string, between?: () => Promise<unknown>): Promise<string> {
  const rowReads = MIRROR_FAMILIES.map((f) => ({ reads: f.reads.filter((c) => c !== 'tables') }));
  const { rows } = await pool.query<MirrorRow>(`select ${mirrorRowColumns(schema, rowReads)} from ${tables(schema).mirrors} where dropped_at is null`);
  await between?.();
  const { rows: tableRows } = await pool.query<MirrorRow>(
    `select ${mirrorRowColumns(schema, [{ reads: ['tables'] }])} from ${tables(schema).mirrors} where dropped_at is null`,
  );
  const tablesOf = new Map(tableRows.map((r) => [r.mirror, r.tables]));
  for (const row of rows) row.tables = tablesOf.get(row.mirror) ?? null;
  return bucketText(await renderRows(rows));
}

async function renderRows(rows: MirrorRow[]): Promise<Bucket[]> {
  const cache = new MirrorTextCache(MIRROR_FAMILIES);
  cache.stale(rows.map(({ mirror, version }) => ({ mirror, version })));
  return cache.update(rows, async () => undefined, 64);
}

/** A snapshot's per-mirror sample lines as one string (what the /metrics route streams, without HELP and TYPE). */
export function bucketText(buckets: readonly Bucket[]): string {
  let text = '';
  for (let f = 0; f < MIRROR_FAMILIES.length; f++) for (const b of buckets) text += b.text[f]!.toString('utf8');
  return text;
}
