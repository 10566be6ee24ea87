/**
 * The producer library (src/index.ts) against a real pg-boss: all-or-nothing validation, splitting
 * into jobs of at most 1000, publishing inside the producer's own transaction (rolled back: no job;
 * committed: the job exists and a daemon drains it into the catalog).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createProducer,
  DEAD_LETTER_QUEUE,
  InvalidUpdateError,
  type Producer,
  publishUpdates,
  STATUSES,
  UPDATES_QUEUE,
  type UpdateInput,
  validateUpdates,
} from '../../src/index.js';
import { CLI, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { logJobs, loggedJobs } from '../helpers/queue.js';

const run = promisify(execFile);

let db: TestDatabase;
let producer: Producer;

beforeAll(async () => {
  db = await createTestDatabase('ingest_publish');
  // The daemon's migration creates pg-boss's schema and the queues; a producer never does.
  await run(process.execPath, [CLI, 'migrate'], { env: { ...process.env, DATABASE_URL: db.url, MIRRORSTATE_LOG_LEVEL: 'warn' } });
  await logJobs(db.pool);
  producer = await createProducer(db.url);
});

afterAll(async () => {
  await producer?.stop();
  await db?.drop();
});

function update(mirror: string, seq = 0): UpdateInput {
  return { mirror, status: 'running', observedAt: '2026-11-21T10:00:00.123456789Z', seq };
}

async function jobSizes(since: Date): Promise<(number | string)[]> {
  const { rows } = await db.pool.query<{ size: number | string }>(
    `select coalesce(jsonb_array_length(data->'updates')::text, data->>'mirror') as size
       from pgboss.job where name = $1 and created_on >= $2 order by created_on, id`,
    [UPDATES_QUEUE, since],
  );
  return rows.map((r) => (/^\d+$/.test(String(r.size)) ? Number(r.size) : r.size)).sort();
}

describe('publishUpdates', () => {
  it('splits 2,500 updates into 3 jobs of at most 1000', async () => {
    const before = await loggedJobs(db.pool);
    const since = new Date(Date.now() - 1000);
    const updates = Array.from({ length: 2500 }, (_, i) => update(`split_${i % 250}`, i));
    const ids = await producer.publish(updates);
    expect(ids).toHaveLength(3);
    expect(await loggedJobs(db.pool)).toBe(before + 3);
    expect(await jobSizes(since)).toEqual([1000, 1000, 500]);
  });

  it('sends a single update as a bare job, and nothing for none', async () => {
    const before = await loggedJobs(db.pool);
    const [id] = await publishUpdates(producer.boss, [update('single_bare')]);
    const [job] = await producer.boss.findJobs<Record<string, unknown>>(UPDATES_QUEUE, { id: id as string });
    expect(job?.data).toMatchObject({ mirror: 'single_bare', status: 'running' });
    expect(await publishUpdates(producer.boss, [])).toEqual([]);
    expect(await loggedJobs(db.pool)).toBe(before + 1);
  });

  it('enqueues nothing when any update is invalid, and lists every error by index', async () => {
    const before = await loggedJobs(db.pool);
    const updates = [
      update('valid_0'),
      { mirror: '', status: 'asleep', observedAt: '2026-11-21T10:00:00Z' },
      ...Array.from({ length: 1500 }, (_, i) => update(`valid_${i + 1}`)),
      { mirror: 'bad_lag', status: 'running', observedAt: '2026-11-21T10:00:00Z', lagSeconds: -1 },
    ] as UpdateInput[];
    const error = await publishUpdates(producer.boss, updates).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InvalidUpdateError);
    const errors = (error as InvalidUpdateError).errors.map((e) => `${e.index}:${e.field}`);
    expect(errors).toEqual(['1:mirror', '1:status', '1502:lagSeconds']);
    expect((error as Error).message).toMatch(/nothing was published/);
    expect(await loggedJobs(db.pool)).toBe(before);
    expect(await loggedJobs(db.pool, DEAD_LETTER_QUEUE)).toBe(0);
  });

  it('validates with the daemon rules: every status spelling, and the future limit', () => {
    const observedAt = new Date().toISOString();
    const spellings = STATUSES.flatMap((s, code) => [s, s.toUpperCase(), `STATUS_${s.toUpperCase()}`, code]);
    expect(validateUpdates(spellings.map((status) => ({ mirror: 'm', status, observedAt })))).toEqual([]);
    const future = new Date(Date.now() + 10 * 60_000).toISOString();
    expect(validateUpdates([{ mirror: 'm', status: 1, observedAt: future }])).toEqual([
      { index: 0, field: 'observedAt', message: expect.stringMatching(/future/) },
    ]);
  });
});

describe('publishing inside the producer transaction', () => {
  beforeAll(async () => {
    await db.pool.query('create table producer_orders (id int primary key, mirror text not null)');
  });

  /** What docs/message.md shows: the caller's transaction, as pg-boss's `db` option. */
  async function inProducerTransaction(id: number, mirror: string, outcome: 'commit' | 'rollback'): Promise<string[]> {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query('insert into producer_orders (id, mirror) values ($1, $2)', [id, mirror]);
      const ids = await publishUpdates(producer.boss, [update(mirror)], {
        db: { executeSql: (text, values) => client.query(text, values) },
      });
      await client.query(outcome);
      return ids;
    } finally {
      client.release();
    }
  }

  it('leaves no job when the transaction rolls back, and the job when it commits', async () => {
    const before = await loggedJobs(db.pool);
    const [rolledBack] = await inProducerTransaction(1, 'tx_rolled_back', 'rollback');
    expect(rolledBack).toBeDefined();
    expect(await loggedJobs(db.pool)).toBe(before);
    expect(await producer.boss.findJobs(UPDATES_QUEUE, { id: rolledBack as string })).toEqual([]);

    const [committed] = await inProducerTransaction(2, 'tx_committed', 'commit');
    expect(await loggedJobs(db.pool)).toBe(before + 1);
    expect(await producer.boss.findJobs(UPDATES_QUEUE, { id: committed as string })).toHaveLength(1);
    const { rows } = await db.pool.query('select id from producer_orders order by id');
    expect(rows).toEqual([{ id: 2 }]);
  });

  it('a daemon drains what was published into the catalog, and only that', async () => {
    const daemon = await startDaemon({ databaseUrl: db.url });
    try {
      await waitFor('the committed mirror in the catalog', async () => {
        const { rows } = await db.pool.query("select 1 from mirrorstate.mirrors where mirror = 'tx_committed'");
        return rows.length === 1;
      });
      await waitFor('the split mirrors in the catalog', async () => {
        const { rows } = await db.pool.query<{ n: number }>(
          "select count(*)::int as n from mirrorstate.mirrors where mirror like 'split\\_%' and seq >= 2250",
        );
        return rows[0]?.n === 250;
      });
      const { rows } = await db.pool.query<{ mirror: string; observed_at: string }>(
        "select mirror, to_char(observed_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') as observed_at from mirrorstate.mirrors where mirror in ('tx_committed', 'tx_rolled_back', 'valid_0')",
      );
      // Nothing of the rolled-back transaction nor of the refused publish; microseconds kept.
      expect(rows).toEqual([{ mirror: 'tx_committed', observed_at: '2026-11-21T10:00:00.123456' }]);
    } finally {
      await daemon.stop();
    }
  });
});

describe('the package entry point', () => {
  it('imports without side effects on node-pg (int8 stays a string for the producer)', async () => {
    const script = `import pg from 'pg'; await import(${JSON.stringify(new URL('../../dist/index.js', import.meta.url).href)}); process.stdout.write(typeof pg.types.getTypeParser(20)('5'));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url).pathname });
    expect(stdout).toBe('string');
  });
});
