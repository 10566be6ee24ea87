/**
 * Invalid updates mixed into valid jobs and batches end in the dead-letter queue, one job per
 * invalid update with its reason and source; the valid ones are applied; nothing blocks.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { pendingJobs } from '../helpers/model.js';
import { startProducer } from '../helpers/queue.js';

const at = (s: number) => new Date(Date.now() - 3_600_000 + s * 1000).toISOString();

describe('poison updates', () => {
  let db: TestDatabase;
  let daemon: DaemonProcess;
  let producer: PgBoss;

  beforeAll(async () => {
    db = await createTestDatabase('poison');
    daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_BATCH_SIZE: '100' } });
    producer = await startProducer(db.url);
  });
  afterAll(async () => {
    await producer?.stop({ graceful: false });
    await daemon?.stop();
    await db?.drop();
  });

  async function deadLetters() {
    const { rows } = await db.pool.query(
      `select data from pgboss.job where name = 'mirrorstate-updates-dlq' order by data->'job'->>'id', (data->'job'->>'index')::int`,
    );
    return rows.map((r) => r.data);
  }

  it('dead-letters each invalid update with its reason and applies the valid ones', async () => {
    // Stopped consumer? No: all jobs go in one insert so they land in the same batches.
    const jobs: unknown[] = [
      { mirror: 'good_a', status: 'running', observedAt: at(1) },
      { updates: [
        { mirror: 'good_b', status: 'RUNNING', observedAt: at(2) },
        { mirror: 'bad_status', status: 'sleeping', observedAt: at(3) },
        { mirror: 'good_b', status: 'STATUS_PAUSED', observedAt: at(4), seq: 1 },
        { mirror: '', status: 1, observedAt: 'yesterday', seq: -1 },
        'not an object',
      ] },
      { mirror: 'future', status: 'running', observedAt: new Date(Date.now() + 3_600_000).toISOString() },
      { mirror: 'tab\there', status: 'running', observedAt: at(5) },
      [1, 2, 3],
      { updates: 'nope' },
      { updates: Array.from({ length: 1001 }, (_, i) => ({ mirror: `too_many_${i}`, status: 'running', observedAt: at(6) })) },
      { mirror: 'good_c', status: 10, observedAt: at(7), error: { message: 'slot lost' } },
    ];
    const ids = (await producer.insert('mirrorstate-updates', jobs.map((data) => ({ data: data as object })), { returnId: true })) as string[];
    await waitFor('the queue to drain', async () => (await pendingJobs(db.pool)) === 0);

    const { rows: mirrors } = await db.pool.query('select mirror, status, error_class from mirrorstate.mirrors order by mirror');
    expect(mirrors).toEqual([
      { mirror: 'good_a', status: 'running', error_class: null },
      { mirror: 'good_b', status: 'paused', error_class: null },
      { mirror: 'good_c', status: 'failed', error_class: 'unknown' },
    ]);

    const letters = await deadLetters();
    const bySource = letters.map((l) => ({ job: ids.indexOf(l.job.id), index: l.job.index, fields: l.errors.map((e: { field: string }) => e.field) }));
    expect(bySource).toEqual(
      expect.arrayContaining([
        { job: 1, index: 1, fields: ['status'] },
        { job: 1, index: 3, fields: ['mirror', 'observedAt', 'seq'] },
        { job: 1, index: 4, fields: [''] },
        { job: 2, index: null, fields: ['observedAt'] },
        { job: 3, index: null, fields: ['mirror'] },
        { job: 4, index: null, fields: [''] },
        { job: 5, index: null, fields: ['updates'] },
        { job: 6, index: null, fields: ['updates'] },
      ]),
    );
    expect(letters).toHaveLength(8);
    const status = letters.find((l) => l.update?.mirror === 'bad_status');
    expect(status).toMatchObject({ reason: expect.stringMatching(/^invalid update: status must be one of/), update: { mirror: 'bad_status', status: 'sleeping' } });
    const tooMany = letters.find((l) => l.job.id === ids[6]);
    expect(tooMany.update.updates).toHaveLength(1001); // kept whole, as received
    expect(tooMany.reason).toMatch(/at most 1000 updates, got 1001/);

    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toMatch(/^mirrorstate_updates_total\{result="rejected"\} 8$/m);
    expect(metrics).toMatch(/^mirrorstate_updates_total\{result="applied"\} 4$/m);
  });

  it('isolates an update the catalog itself refuses, and writes the rest of its batch', async () => {
    // A constraint only this test has: the catalog refuses one mirror's rows (SQLSTATE 23514).
    await db.pool.query(`alter table mirrorstate.mirrors add constraint refuse_poison check (mirror <> 'refused')`);
    const batch = { updates: [
      ...Array.from({ length: 20 }, (_, i) => ({ mirror: `neighbour_${i}`, status: 'running', observedAt: at(10 + i) })),
      { mirror: 'refused', status: 'running', observedAt: at(40) },
    ] };
    const [id] = (await producer.insert('mirrorstate-updates', [{ data: batch }], { returnId: true })) as string[];
    await waitFor('the queue to drain', async () => (await pendingJobs(db.pool)) === 0);
    const { rows } = await db.pool.query(`select count(*)::int as n from mirrorstate.mirrors where mirror like 'neighbour_%'`);
    expect(rows[0].n).toBe(20);
    const refused = (await deadLetters()).filter((l) => l.job.id === id);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ job: { id, index: 20 }, update: { mirror: 'refused' } });
    expect(refused[0].reason).toMatch(/catalog refused the update: .*refuse_poison.*23514/);
    await db.pool.query(`alter table mirrorstate.mirrors drop constraint refuse_poison`);
    // The first, whole-batch attempt failed once and is counted; its update-by-update retry is not.
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toMatch(/^mirrorstate_batch_failures_total\{reason="refused"\} 1$/m);
    expect(metrics).toMatch(/^mirrorstate_batch_failures_total\{reason="error"\} 0$/m);
  });
});
