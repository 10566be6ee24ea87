/**
 * `mirrorstate status [MIRROR]`: current states as a table, or one mirror with its journal metadata
 * and transitions. It reads exactly as the read API does (catalog/read*.ts): the table from one
 * statement, one mirror from one snapshot. The reported values come from their declaration
 * (catalog/mirrorFields.ts): one mirror shows every one, the table a chosen few.
 */
import type { Pool } from '../db/pool.js';
import { CommandFailure, EXIT } from './failure.js';
import { MIRROR_FIELD_LIST, type MirrorFieldName } from '../catalog/mirrorFields.js';
import { readMirror } from '../catalog/readMirror.js';
import { readMirrors } from '../catalog/readMirrors.js';
import { DETAIL_TRANSITIONS, type MirrorState } from '../catalog/views.js';

/** The reported values the table shows, in its order: how far each mirror has got; the rest is one `status MIRROR` away. */
const TABLE_FIELDS = ['flowType', 'rowsSynced', 'lagSeconds', 'slotLagBytes'] as const satisfies readonly MirrorFieldName[];
const ALL_FIELDS = MIRROR_FIELD_LIST.map((f) => f.name);

/** A value's label: its read API name in snake case (rowsSynced → rows_synced), as status_since and the rest read. */
export const label = (name: MirrorFieldName): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function reported(m: MirrorState, names: readonly MirrorFieldName[]): Record<string, unknown> {
  return Object.fromEntries(names.map((name) => [label(name), m[name]]));
}

function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(columns), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n') + '\n';
}

export async function printStatus(pool: Pool, schema: string, mirror: string | undefined, out: NodeJS.WritableStream): Promise<number> {
  if (mirror === undefined) {
    const mirrors = await readMirrors(pool, schema);
    const rows = mirrors.map((m) => ({
      mirror: m.mirror, status: m.status, since: m.statusSince, observed_at: m.observedAt, ...reported(m, TABLE_FIELDS),
      error_class: m.error?.class, journal: m.journalLength, transitions: m.transitionsTotal,
    }));
    out.write(rows.length ? table(rows, Object.keys(rows[0] as object)) : 'no mirrors yet\n');
    return 0;
  }
  const detail = await readMirror(pool, schema, mirror, { events: 0, transitions: DETAIL_TRANSITIONS });
  if (!detail) {
    throw new CommandFailure(`no mirror named ${JSON.stringify(mirror)} in the catalog (\`mirrorstate status\` lists them)`, EXIT.failed);
  }
  const m = detail.mirror;
  const fields: Record<string, unknown> = {
    mirror: m.mirror, status: m.status, status_since: m.statusSince, observed_at: m.observedAt, seq: m.seq,
    ...reported(m, ALL_FIELDS),
    error_class: m.error?.class, error_message: m.error?.message,
    dropped_at: m.droppedAt, transitions_total: m.transitionsTotal, journal_length: detail.journal.length,
    journal_oldest_at: detail.journal.oldestAt, created_at: m.createdAt, updated_at: m.updatedAt,
  };
  out.write(table(Object.entries(fields).map(([field, value]) => ({ field, value })), ['field', 'value']));
  const transitions = detail.transitions.map((x) => ({ ...x, error_class: x.error?.class }));
  out.write(`\ntransitions (newest first):\n${table(transitions, ['id', 'from', 'to', 'at', 'seq', 'error_class'])}`);
  return 0;
}
