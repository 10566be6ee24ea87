/** `mirrorstate status [MIRROR]`: current states as a table, or one mirror with its transitions. */
import type { Pool } from './db.js';
import { inTransaction } from './db.js';
import { tables, UTC_MICROS } from './catalog/sql.js';

export const SNAPSHOT = 'begin isolation level repeatable read read only';

function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(columns), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n') + '\n';
}

export async function printStatus(pool: Pool, schema: string, mirror: string | undefined, out: NodeJS.WritableStream): Promise<number> {
  const t = tables(schema);
  if (mirror === undefined) {
    const { rows } = await pool.query(
      `select mirror, status, ${UTC_MICROS('status_since')} as since, ${UTC_MICROS('observed_at')} as observed_at,
              flow_type, rows_synced, lag_seconds, error_class, journal_length as journal, transitions_total as transitions
         from ${t.mirrors} where dropped_at is null order by mirror`,
    );
    out.write(rows.length ? table(rows, Object.keys(rows[0])) : 'no mirrors yet\n');
    return 0;
  }
  return inTransaction(pool, SNAPSHOT, async (client) => {
    const { rows: [row] } = await client.query(
      `select mirror, status, ${UTC_MICROS('status_since')} as status_since, ${UTC_MICROS('observed_at')} as observed_at, seq,
              workflow_id, run_id, flow_type, source_peer, destination_peer, rows_synced, lag_seconds, error_class,
              error_message, ${UTC_MICROS('dropped_at')} as dropped_at, transitions_total, journal_length,
              ${UTC_MICROS('journal_oldest_at')} as journal_oldest_at
         from ${t.mirrors} where mirror = $1`,
      [mirror],
    );
    if (!row) {
      out.write(`no mirror named ${JSON.stringify(mirror)}\n`);
      return 1;
    }
    out.write(table(Object.entries(row).map(([field, value]) => ({ field, value })), ['field', 'value']));
    const { rows: transitions } = await client.query(
      `select id, from_status as "from", to_status as "to", ${UTC_MICROS('at')} as at, seq, error_class
         from ${t.transitions} where mirror = $1 order by id desc limit 20`,
      [mirror],
    );
    out.write(`\ntransitions (newest first):\n${table(transitions, ['id', 'from', 'to', 'at', 'seq', 'error_class'])}`);
    return 0;
  });
}
