/**
 * The batch writer's rules (docs/message.md, Applying an update), against a real catalog, one
 * transaction per batch.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyBatch } from '../../src/catalog/applyBatch.js';
import { migrate } from '../../src/catalog/migrate.js';
import { clientExecutor, UTC_MICROS } from '../../src/catalog/sql.js';
import { inTransaction } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { parseUpdate, type StateUpdate } from '../../src/update.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
const SCHEMA = 'catalog_test';

function u(fields: Record<string, unknown>): StateUpdate {
  const r = parseUpdate({ mirror: 'm', status: 'running', ...fields });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}
const write = (batch: StateUpdate[]) => inTransaction(db.pool, 'begin', (c) => applyBatch(clientExecutor(c), SCHEMA, batch));
async function mirror(name = 'm') {
  const { rows } = await db.pool.query(
    `select status, ${UTC_MICROS('observed_at')} as observed_at, seq, ${UTC_MICROS('status_since')} as status_since, workflow_id, rows_synced,
            lag_seconds, slot_lag_bytes, error_class, error_message, ${UTC_MICROS('dropped_at')} as dropped_at, transitions_total, journal_length,
            ${UTC_MICROS('journal_oldest_at')} as journal_oldest_at
       from ${SCHEMA}.mirrors where mirror = $1`, [name]);
  return rows[0];
}
async function transitions(name = 'm') {
  const { rows } = await db.pool.query(`select from_status, to_status, ${UTC_MICROS('at')} as at from ${SCHEMA}.transitions where mirror = $1 order by id`, [name]);
  return rows.map((r) => `${r.from_status ?? '∅'}→${r.to_status}@${r.at.slice(11)}`);
}

beforeAll(async () => {
  db = await createTestDatabase('apply');
  await migrate(db.pool, SCHEMA, createLogger('silent'));
});
afterAll(async () => db?.drop());
beforeEach(async () => {
  await db.pool.query(`truncate ${SCHEMA}.mirrors, ${SCHEMA}.mirror_tables, ${SCHEMA}.transitions, ${SCHEMA}.journal`);
});

describe('applyBatch', () => {
  it('applies updates of one batch in version order, microseconds and seq included', async () => {
    const outcome = await write([
      u({ status: 'paused', observedAt: '2026-11-21T10:00:00.000002Z' }),
      u({ status: 'failed', observedAt: '2026-11-21T10:00:00.000001Z', seq: 5 }),
      u({ status: 'running', observedAt: '2026-11-21T10:00:00.000001Z', seq: 4 }),
      u({ status: 'snapshot', observedAt: '2026-11-21T10:00:00.0000019Z', seq: 6 }), // truncates to .000001
    ]);
    expect(outcome).toEqual({ applied: 4, stale: 0, duplicate: 0, transitions: 4 });
    expect(await transitions()).toEqual([
      '∅→running@10:00:00.000001Z', 'running→failed@10:00:00.000001Z', 'failed→snapshot@10:00:00.000001Z', 'snapshot→paused@10:00:00.000002Z',
    ]);
    expect(await mirror()).toMatchObject({ status: 'paused', observed_at: '2026-11-21T10:00:00.000002Z', transitions_total: 4, journal_length: 4 });
  });

  it('journals each update with its own payload as received, applied and stale alike', async () => {
    // Keys and payloads reach the journal as two documents zipped in order (applyBatch.ts): a
    // payload one place off would journal another update's body under this one's key.
    const first = u({ mirror: 'a', observedAt: '2026-11-21T10:00:05Z' });
    await write([first]);
    const batch = ['b', 'a', 'c'].flatMap((name, i) => [1, 2, 3].map((seq) => u({
      mirror: name, observedAt: `2026-11-21T10:00:0${seq + i}+00:00`, seq, note: `${name}/${seq}`, nested: { list: [seq, name] },
    })));
    const outcome = await write(batch);
    expect(outcome).toMatchObject({ applied: 6, stale: 3 });
    const { rows } = await db.pool.query(
      `select mirror, ${UTC_MICROS('observed_at')} as observed_at, seq::int as seq, applied, payload from ${SCHEMA}.journal order by mirror, observed_at, seq`,
    );
    const sent = new Map([first, ...batch].map((x) => [`${x.mirror} ${x.observedAt} ${x.seq}`, x.payload]));
    expect(rows).toHaveLength(10);
    for (const row of rows) {
      const key = `${row.mirror} ${row.observed_at} ${row.seq}`;
      expect(row.payload, key).toEqual(sent.get(key));
    }
    expect(rows.filter((r) => !r.applied).map((r) => r.payload.note)).toEqual(['a/1', 'a/2', 'a/3']);
  });

  it('journals a stale update without changing state, and ignores a duplicate entirely', async () => {
    await write([u({ status: 'paused', observedAt: '2026-11-21T10:00:05Z', rowsSynced: 9 })]);
    expect(await write([u({ status: 'failed', observedAt: '2026-11-21T10:00:01Z' })])).toMatchObject({ applied: 0, stale: 1 });
    // The same key in a different spelling (offset, nanoseconds) is the same update.
    const again = u({ status: 'paused', observedAt: '2026-11-21T11:00:05.000000999+01:00', rowsSynced: 9 });
    const touched = async () => (await db.pool.query(`select updated_at::text, xmin::text from ${SCHEMA}.mirrors`)).rows[0];
    const before = await touched();
    expect(await write([again, again])).toEqual({ applied: 0, stale: 0, duplicate: 2, transitions: 0 });
    expect(await touched()).toEqual(before); // not even rewritten
    expect(await mirror()).toMatchObject({ status: 'paused', rows_synced: 9, journal_length: 2, journal_oldest_at: '2026-11-21T10:00:01.000000Z' });
    const { rows } = await db.pool.query(`select applied from ${SCHEMA}.journal order by observed_at`);
    expect(rows.map((r) => r.applied)).toEqual([false, true]);
    expect(await transitions()).toEqual(['∅→paused@10:00:05.000000Z']);
  });

  it('carries reported fields, clears error with the next applied update, drops and brings back', async () => {
    await write([u({ observedAt: '2026-11-21T10:00:00Z', workflowId: 'wf1', rowsSynced: 5, lagSeconds: 2.5, slotLagBytes: 2 ** 40 })]);
    await write([u({ status: 'failed', observedAt: '2026-11-21T10:00:01Z', error: { message: 'slot lost', class: 'slot' }, rowsSynced: null })]);
    expect(await mirror()).toMatchObject({ workflow_id: 'wf1', rows_synced: 5, lag_seconds: 2.5, slot_lag_bytes: 2 ** 40, error_class: 'slot', error_message: 'slot lost', status_since: '2026-11-21T10:00:01.000000Z' });
    await write([u({ status: 'failed', observedAt: '2026-11-21T10:00:02Z', dropped: true })]);
    expect(await mirror()).toMatchObject({ error_class: null, error_message: null, dropped_at: '2026-11-21T10:00:02.000000Z', status_since: '2026-11-21T10:00:01.000000Z', transitions_total: 2 });
    await write([u({ status: 'running', observedAt: '2026-11-21T10:00:03Z' })]);
    expect(await mirror()).toMatchObject({ dropped_at: null, status: 'running', transitions_total: 3 });
    // Each transition carries the workflow and the error of the state it entered, null when absent.
    const { rows } = await db.pool.query(
      `select from_status, to_status, seq, workflow_id, error_class, error_message from ${SCHEMA}.transitions where mirror = 'm' order by id`,
    );
    expect(rows).toEqual([
      { from_status: null, to_status: 'running', seq: 0, workflow_id: 'wf1', error_class: null, error_message: null },
      { from_status: 'running', to_status: 'failed', seq: 0, workflow_id: 'wf1', error_class: 'slot', error_message: 'slot lost' },
      { from_status: 'failed', to_status: 'running', seq: 0, workflow_id: 'wf1', error_class: null, error_message: null },
    ]);
  });

  it('a stale dropped update does not drop the mirror', async () => {
    await write([u({ observedAt: '2026-11-21T10:00:05Z' })]);
    await write([u({ observedAt: '2026-11-21T10:00:00Z', dropped: true })]);
    expect((await mirror()).dropped_at).toBeNull();
  });

  it('concurrent batches on the same mirrors neither deadlock nor lose or double a transition', async () => {
    // 8 writers at once, each with one update for each of 30 mirrors in its own order: every
    // writer's status differs from the others', so each applied update that follows another is a
    // transition, and the chain must stay unbroken.
    const mirrors = Array.from({ length: 30 }, (_, i) => `c${i}`);
    const statuses = ['running', 'paused', 'failed', 'snapshot', 'setup', 'resync', 'pausing', 'modifying'];
    await Promise.all(statuses.map((status, w) => {
      const batch = mirrors.map((m) => u({ mirror: m, status, observedAt: `2026-11-21T10:00:0${w}Z` }));
      return write(w % 2 ? batch.reverse() : batch);
    }));
    for (const m of mirrors) {
      const { rows } = await db.pool.query(`select from_status, to_status from ${SCHEMA}.transitions where mirror = $1 order by id`, [m]);
      expect(rows[0].from_status).toBeNull();
      for (let i = 1; i < rows.length; i++) expect(rows[i].from_status).toBe(rows[i - 1].to_status);
      const row = await mirror(m);
      expect(row.status).toBe('modifying'); // the highest version, whoever committed last
      expect(row.transitions_total).toBe(rows.length);
      expect(row.journal_length).toBe(8);
    }
  });
});
