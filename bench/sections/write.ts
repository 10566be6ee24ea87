/**
 * Write throughput over 1,000 mirrors, side by side in one run on one database server:
 * - raw:    the same journal rows and current-state upserts as batched SQL, no queue, no rules (the limit);
 *           and again with the status-transition rows the daemon also writes (one per update here);
 * - bare pg-boss: pg-boss draining the same single-update jobs with a handler that does nothing, at
 *           the daemon's batch size and concurrency and with its queue settings (the queue's limit);
 * - naive:  one transaction per update (lock, journal, transition, update), no batching;
 * - daemon: the daemon end to end draining single-update jobs, then 100-update jobs;
 * and freshness: publish → committed in the catalog, at a steady 1,000 updates/s;
 * and table sets: applyBatch alone writing 5,000 PeerDB-like updates of 20 tables each (batches of
 * 500) into a fresh catalog, then again with 1 of 20 tables changed and with nothing changed, beside
 * the same updates without tables. BENCH_WRITE_TABLES=only runs this part alone.
 * raw, bare pg-boss and the daemon rows run in BENCH_WRITE_ROUNDS (default 3) interleaved rounds;
 * each row is the median of its rounds. BENCH_BASELINE_CLI adds another build's daemon to each round.
 *
 * Freshness is observed at commit, after a warm-up that gives every mirror its row: a trigger in the
 * bench database NOTIFYs each journal row's `sentAt`, and PostgreSQL delivers a NOTIFY only when its
 * transaction commits.
 */
import { loadavg } from 'node:os';
import pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { type DaemonProcess, startDaemon, waitFor } from '../../test/helpers/daemon.js';
import { startProducer } from '../../test/helpers/queue.js';
import { createLogger } from '../../src/log.js';
import { createBoss } from '../../src/queue/boss.js';
import { applyBatch } from '../../src/catalog/applyBatch.js';
import { migrate } from '../../src/catalog/migrate.js';
import { clientExecutor } from '../../src/catalog/sql.js';
import { parseUpdate, type StateUpdate } from '../../src/update.js';
import type { BenchSection } from '../index.js';
import { percentile } from '../lib.js';

const MIRRORS = 1000;
/** BENCH_WRITE_UPDATES: updates per row (default 20,000; 100,000 makes a daemon's start-up a smaller share). */
const UPDATES = Number(process.env.BENCH_WRITE_UPDATES ?? 20_000);
const NAIVE_UPDATES = 2_000;
const ROUNDS = Number(process.env.BENCH_WRITE_ROUNDS ?? 3);
/** Another build's CLI entry (dist/cli/index.js; dist/cli.js in older builds), e.g. main's, its daemon rows measured in the same rounds. */
const BASELINE_CLI = process.env.BENCH_BASELINE_CLI;
const FRESHNESS_RATE = 1000;
const FRESHNESS_SECONDS = 10;
const STATUSES = ['running', 'paused', 'snapshot', 'failed'];

const nowMicros = () => performance.timeOrigin + performance.now();

function makeUpdates(n: number, offset = 0): Record<string, unknown>[] {
  const start = Date.now() - 3_600_000;
  return Array.from({ length: n }, (_, i) => ({
    mirror: `bench_mirror_${(i + offset) % MIRRORS}`,
    status: STATUSES[Math.floor((i + offset) / MIRRORS) % STATUSES.length],
    observedAt: new Date(start + i + offset).toISOString(),
    seq: 0,
    rowsSynced: i,
  }));
}

function progress(label: string, done: number, total: number): void {
  process.stdout.write(`\r  ${label}: ${done}/${total}   `);
  if (done >= total) process.stdout.write('\n');
}

/**
 * Journal rows so far, polled every 20 ms during a drain: the identity's high-water mark (one index
 * probe, since reset restarts it) and an exact count only once that says the drain may be done: a
 * count(*) at 50 Hz would take a share of the CPU the measured daemon needs.
 */
async function journalCount(pool: pg.Pool, expected: number): Promise<number> {
  const high = Number((await pool.query('select coalesce(max(id), 0) as n from mirrorstate.journal')).rows[0].n);
  if (high < expected) return high;
  return Number((await pool.query('select count(*) from mirrorstate.journal')).rows[0].count);
}

/**
 * Every row starts from the same empty catalog and a vacuumed queue: the deleted jobs of the
 * previous row would otherwise be dead tuples the next row's fetches step over (this server runs
 * with autovacuum off), a cost that depends only on the row's place in the round.
 */
async function reset(pool: pg.Pool): Promise<void> {
  await pool.query('truncate mirrorstate.mirrors, mirrorstate.mirror_tables, mirrorstate.transitions, mirrorstate.journal restart identity');
  await pool.query(`delete from pgboss.job where name = 'mirrorstate-updates'`);
  await pool.query('vacuum pgboss.job');
}

/**
 * Fills the queue, then ANALYZEs the job table: every drain starts with statistics that know the
 * backlog. Without it the planner, still believing the table as empty as the last reset left it,
 * reads and sorts the whole queue on each fetch or claim until something analyzes it, and a row's
 * figure depended on whether its drain outlasted that (docs/performance.md, Figures behind the
 * design).
 */
async function fillQueue(db: TestDatabase, producer: PgBoss, jobs: object[]): Promise<void> {
  for (let i = 0; i < jobs.length; i += 1000) {
    await producer.insert('mirrorstate-updates', jobs.slice(i, i + 1000).map((data) => ({ data })));
  }
  await db.pool.query('analyze pgboss.job');
}

/**
 * The limit: the same rows, batched, no rules. `transitions`: also the status-transition rows the
 * daemon writes (every bench update changes its mirror's status, so one per update).
 */
async function raw(pool: pg.Pool, updates: Record<string, unknown>[], transitions = false): Promise<number> {
  const label = transitions ? 'raw with transitions' : 'raw';
  const started = performance.now();
  const previous = new Map<string, string>();
  for (let i = 0; i < updates.length; i += 500) {
    const chunk = updates.slice(i, i + 500);
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query(
        `insert into mirrorstate.journal (mirror, observed_at, seq, status, applied, payload)
         select * from unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::text[], $5::boolean[], $6::jsonb[])`,
        [chunk.map((u) => u.mirror), chunk.map((u) => u.observedAt), chunk.map(() => 0), chunk.map((u) => u.status),
          chunk.map(() => true), chunk.map((u) => JSON.stringify(u))],
      );
      if (transitions) {
        const changes = chunk.filter((u) => previous.get(u.mirror as string) !== u.status);
        await client.query(
          `insert into mirrorstate.transitions (mirror, from_status, to_status, at, seq)
           select m, f, t, a, 0 from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) as x(m, f, t, a)`,
          [changes.map((u) => u.mirror), changes.map((u) => previous.get(u.mirror as string) ?? null), changes.map((u) => u.status),
            changes.map((u) => u.observedAt)],
        );
        for (const u of chunk) previous.set(u.mirror as string, u.status as string);
      }
      // Last update per mirror of the chunk, as one upsert.
      const last = new Map(chunk.map((u) => [u.mirror as string, u]));
      const rows = [...last.values()].sort((a, b) => String(a.mirror).localeCompare(String(b.mirror)));
      await client.query(
        `insert into mirrorstate.mirrors (mirror, status, status_since, observed_at, seq, rows_synced)
         select m, s, t, t, 0, r from unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[]) as u(m, s, t, r)
         on conflict (mirror) do update set status = excluded.status, status_since = excluded.status_since,
           observed_at = excluded.observed_at, rows_synced = excluded.rows_synced, updated_at = now()`,
        [rows.map((u) => u.mirror), rows.map((u) => u.status), rows.map((u) => u.observedAt), rows.map((u) => u.rowsSynced)],
      );
      await client.query('commit');
    } finally {
      client.release();
    }
    progress(label, Math.min(i + 500, updates.length), updates.length);
  }
  return (performance.now() - started) / 1000;
}

/** One transaction per update, the rules kept by separate statements. */
async function naive(pool: pg.Pool, updates: Record<string, unknown>[]): Promise<number> {
  const started = performance.now();
  const client = await pool.connect();
  try {
    for (const [i, u] of updates.entries()) {
      await client.query('begin');
      await client.query(
        `insert into mirrorstate.mirrors (mirror, status, status_since, observed_at, seq) values ($1, $2, $3, $3, 0)
         on conflict (mirror) do nothing`,
        [u.mirror, u.status, u.observedAt],
      );
      const { rows } = await client.query('select status, observed_at from mirrorstate.mirrors where mirror = $1 for update', [u.mirror]);
      await client.query(
        `insert into mirrorstate.journal (mirror, observed_at, seq, status, applied, payload) values ($1, $2, 0, $3, true, $4)
         on conflict do nothing`,
        [u.mirror, u.observedAt, u.status, JSON.stringify(u)],
      );
      if (rows[0]?.status !== u.status) {
        await client.query(
          `insert into mirrorstate.transitions (mirror, from_status, to_status, at, seq) values ($1, $2, $3, $4, 0)`,
          [u.mirror, rows[0]?.status ?? null, u.status, u.observedAt],
        );
      }
      await client.query(
        `update mirrorstate.mirrors set status = $2, observed_at = $3, rows_synced = $4, journal_length = journal_length + 1,
           updated_at = now() where mirror = $1`,
        [u.mirror, u.status, u.observedAt, u.rowsSynced],
      );
      await client.query('commit');
      if (i % 200 === 199) progress('naive', i + 1, updates.length);
    }
  } finally {
    client.release();
  }
  return (performance.now() - started) / 1000;
}

/** pg-boss alone: the daemon's queue, batch size and concurrency, a handler that writes nothing. */
async function bareDrain(db: TestDatabase, producer: PgBoss, jobs: object[]): Promise<number> {
  await fillQueue(db, producer, jobs);
  const boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 10, logger: createLogger('silent'), worker: true });
  await boss.start();
  let done = 0;
  const started = performance.now();
  try {
    await boss.work('mirrorstate-updates', { batchSize: 500, localConcurrency: 2, pollingIntervalSeconds: 1, burstWhenBatchFull: true, heartbeatRefreshSeconds: 3 },
      async (batch) => {
        done += batch.length;
      });
    await waitFor('bare drain', async () => {
      progress('bare pg-boss drain', done, jobs.length);
      return done >= jobs.length;
    }, 600_000, 20);
    return (performance.now() - started) / 1000;
  } finally {
    await boss.stop({ graceful: true });
  }
}

/** Fills the queue with the daemon stopped, then times the drain from the daemon's start. */
async function daemonDrain(db: TestDatabase, producer: PgBoss, jobs: object[], updates: number, label: string, cli?: string): Promise<number> {
  await fillQueue(db, producer, jobs);
  const daemon = await startDaemon({ databaseUrl: db.url, cli });
  const started = performance.now();
  try {
    await waitFor(`${label} drain`, async () => {
      const n = await journalCount(db.pool, updates);
      progress(label, n, updates);
      return n >= updates;
    }, 600_000, 20);
    return (performance.now() - started) / 1000;
  } finally {
    await daemon.stop();
  }
}

async function freshness(db: TestDatabase, producer: PgBoss, cli?: string): Promise<number[]> {
  await db.pool.query(`
    drop trigger if exists bench_notify on mirrorstate.journal;
    create or replace function mirrorstate.bench_notify() returns trigger language plpgsql as $$
    begin perform pg_notify('bench_committed', new.payload->>'sentAt'); return null; end $$;
    create trigger bench_notify after insert on mirrorstate.journal for each row execute function mirrorstate.bench_notify();`);
  const listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  const latencies: number[] = [];
  listener.on('notification', (n) => {
    if (n.payload) latencies.push(nowMicros() - Number(n.payload));
  });
  await listener.query('listen bench_committed');
  let daemon: DaemonProcess | undefined;
  try {
    daemon = await startDaemon({ databaseUrl: db.url, cli });
    // Steady state: every mirror has its row before the clock starts (a fleet's first update per
    // mirror also creates it, a one-off the figure is not about).
    await producer.insert('mirrorstate-updates', makeUpdates(MIRRORS, 40_000).map((data) => ({ data })));
    await waitFor('freshness warm-up', async () => (await journalCount(db.pool, MIRRORS)) >= MIRRORS, 60_000, 20);
    const total = FRESHNESS_RATE * FRESHNESS_SECONDS;
    const perTick = FRESHNESS_RATE / 100; // every 10 ms
    const start = performance.now();
    let sent = 0;
    let offset = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * FRESHNESS_RATE) + perTick);
      if (due > sent) {
        const batch = makeUpdates(due - sent, 50_000 + offset).map((u) => ({ data: { ...u, sentAt: String(nowMicros()) } }));
        offset += batch.length;
        await producer.insert('mirrorstate-updates', batch);
        sent = due;
        if (sent % 1000 < batch.length) progress('freshness', sent, total);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await waitFor('freshness drain', () => latencies.length >= total, 60_000);
    return latencies;
  } finally {
    await daemon?.stop();
    await listener.end();
  }
}

const TABLE_MIRRORS = 5000;
const TABLES_PER_MIRROR = 20;
const TABLE_BATCH = 500;

/** PeerDB-like updates of every mirror at version `step`: without tables, all new, one of them moved, or as before. */
function tableUpdates(step: number, tables: 'all' | 'one' | 'same' | 'none'): StateUpdate[] {
  const observedAt = new Date(Date.now() - 3_600_000 + step * 1000).toISOString();
  return Array.from({ length: TABLE_MIRRORS }, (_, i) => {
    const mirror = `bench_tables_${String(i).padStart(5, '0')}`;
    const input = {
      mirror, status: 'running', observedAt, seq: 1, workflowId: `${mirror}-peerflow`, source: 'pg_source', destination: 'ch_dest',
      rowsSynced: 12345 * TABLES_PER_MIRROR, lagSeconds: 3.5, slotLagBytes: 1048576,
      ...(tables === 'none' ? {} : {
        tables: Array.from({ length: TABLES_PER_MIRROR }, (_, t) => ({
          table: `public.t${t}`, rowsSynced: 12345 * t + (tables === 'one' && t === 7 ? step : 0), lastSyncedAt: '2026-12-05T10:00:00.000000Z',
          snapshot: { partitions: 2, partitionsSynced: 2, rowsSynced: 2000, startedAt: '2026-12-05T08:00:00.000000Z', finishedAt: '2026-12-05T09:00:00.000000Z' },
        })),
      }),
    };
    const r = parseUpdate(input);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.value;
  });
}

/** applyBatch alone, batch after batch on one connection, each in its own transaction; seconds. */
async function applyAll(pool: pg.Pool, updates: StateUpdate[]): Promise<number> {
  const client = await pool.connect();
  const started = performance.now();
  try {
    for (let i = 0; i < updates.length; i += TABLE_BATCH) {
      await client.query('begin');
      await applyBatch(clientExecutor(client), 'mirrorstate', updates.slice(i, i + TABLE_BATCH));
      await client.query('commit');
    }
    return (performance.now() - started) / 1000;
  } finally {
    client.release();
  }
}

/**
 * The table-set rows, median of ROUNDS: the reference on a catalog of its own; the first import,
 * then the two steady states, one after the other on another.
 */
async function tableSets(): Promise<void> {
  const steps = [
    ['first import, no tables (reference)', 'none'],
    ['first import, 20 tables each', 'all'],
    ['again, 1 of 20 tables changed', 'one'],
    ['again, nothing changed', 'same'],
  ] as const;
  const times: number[][] = steps.map(() => []);
  for (let round = 1; round <= ROUNDS; round++) {
    console.log(`table sets, round ${round} of ${ROUNDS} (load ${loadavg()[0]!.toFixed(1)})`);
    for (const first of [0, 1]) {
      const db = await createTestDatabase('bench_write_tables');
      try {
        await migrate(db.pool, 'mirrorstate', createLogger('silent'));
        times[first]!.push(await applyAll(db.pool, tableUpdates(0, steps[first]![1])));
        if (first === 0) continue;
        for (let j = 2; j < steps.length; j++) times[j]!.push(await applyAll(db.pool, tableUpdates(j, steps[j]![1])));
      } finally {
        await db.drop();
      }
    }
  }
  const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
  const reference = median(times[0]!);
  console.log(`\n| applyBatch with table sets (${TABLE_MIRRORS} mirrors × ${TABLES_PER_MIRROR} tables, batches of ${TABLE_BATCH}; median of ${ROUNDS}; load ${loadavg()[0]!.toFixed(1)}) | seconds | µs per table row beyond the reference |`);
  console.log('|---|---:|---:|');
  for (const [i, [name, tables]] of steps.entries()) {
    const seconds = median(times[i]!);
    const perRow = tables === 'none' ? '' : (((seconds - reference) * 1e6) / (TABLE_MIRRORS * TABLES_PER_MIRROR)).toFixed(1);
    console.log(`| ${name} | ${seconds.toFixed(2)} | ${perRow} |`);
  }
}

async function run(): Promise<void> {
  await tableSets();
  if (process.env.BENCH_WRITE_TABLES === 'only') return;
  const db = await createTestDatabase('bench_write');
  let producer: PgBoss | undefined;
  try {
    // Migrate and create the queues through the daemon itself.
    const first = await startDaemon({ databaseUrl: db.url });
    await first.stop();
    producer = await startProducer(db.url);
    const updates = makeUpdates(UPDATES);

    const hundred: object[] = [];
    for (let i = 0; i < updates.length; i += 100) hundred.push({ updates: updates.slice(i, i + 100) });
    const naiveSeconds = await naive(db.pool, updates.slice(0, NAIVE_UPDATES));
    await reset(db.pool);
    // The rows that are compared run in interleaved rounds and each reports its median, so a burst
    // of load from another process on this shared machine lands on one round, not on one row.
    const times = { raw: [] as number[], rawTx: [] as number[], bare: [] as number[], single: [] as number[], hundred: [] as number[], baseSingle: [] as number[], baseHundred: [] as number[] };
    for (let round = 1; round <= ROUNDS; round++) {
      console.log(`round ${round} of ${ROUNDS} (load ${loadavg()[0]!.toFixed(1)})`);
      times.raw.push(await raw(db.pool, updates));
      await reset(db.pool);
      times.rawTx.push(await raw(db.pool, updates, true));
      await reset(db.pool);
      times.bare.push(await bareDrain(db, producer, updates));
      await reset(db.pool);
      times.single.push(await daemonDrain(db, producer, updates, UPDATES, 'daemon, 1-update jobs'));
      await reset(db.pool);
      times.hundred.push(await daemonDrain(db, producer, hundred, UPDATES, 'daemon, 100-update jobs'));
      await reset(db.pool);
      if (BASELINE_CLI) {
        times.baseSingle.push(await daemonDrain(db, producer, updates, UPDATES, 'baseline daemon, 1-update jobs', BASELINE_CLI));
        await reset(db.pool);
        times.baseHundred.push(await daemonDrain(db, producer, hundred, UPDATES, 'baseline daemon, 100-update jobs', BASELINE_CLI));
        await reset(db.pool);
      }
    }
    const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
    const [rawSeconds, bareSeconds, singleSeconds, hundredSeconds] = [times.raw, times.bare, times.single, times.hundred].map(median) as [number, number, number, number];
    const latencies = await freshness(db, producer);
    await reset(db.pool);
    const baseLatencies = BASELINE_CLI ? await freshness(db, producer, BASELINE_CLI) : [];

    const rate = (n: number, s: number) => Math.round(n / s);
    const rawRate = rate(UPDATES, rawSeconds);
    const rows = [
      ['raw batched SQL, no queue (limit)', UPDATES, rawSeconds, rawRate],
      ['raw batched SQL with the transitions the daemon writes', UPDATES, median(times.rawTx), rate(UPDATES, median(times.rawTx))],
      ['naive: one transaction per update', NAIVE_UPDATES, naiveSeconds, rate(NAIVE_UPDATES, naiveSeconds)],
      ['bare pg-boss drain, single-update jobs, no catalog (queue limit)', UPDATES, bareSeconds, rate(UPDATES, bareSeconds)],
      ['daemon, single-update jobs', UPDATES, singleSeconds, rate(UPDATES, singleSeconds)],
      ['daemon, 100-update jobs', UPDATES, hundredSeconds, rate(UPDATES, hundredSeconds)],
      ...(BASELINE_CLI
        ? [
            ['baseline build (BENCH_BASELINE_CLI), single-update jobs', UPDATES, median(times.baseSingle), rate(UPDATES, median(times.baseSingle))],
            ['baseline build (BENCH_BASELINE_CLI), 100-update jobs', UPDATES, median(times.baseHundred), rate(UPDATES, median(times.baseHundred))],
          ] as const
        : []),
    ] as const;
    const naiveRate = rate(NAIVE_UPDATES, naiveSeconds);
    const bareRate = rate(UPDATES, bareSeconds);
    const rawTxRate = rate(UPDATES, median(times.rawTx));
    console.log(`\n| write path (${MIRRORS} mirrors, batch 500 jobs × 2; median of ${ROUNDS} interleaved rounds; load ${loadavg()[0]!.toFixed(1)}) | updates | seconds | updates/s | vs raw | vs raw with transitions | vs bare pg-boss | vs naive |`);
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, n, s, r] of rows) {
      console.log(`| ${name} | ${n} | ${s.toFixed(2)} | ${r} | ${(r / rawRate).toFixed(2)}× | ${(r / rawTxRate).toFixed(2)}× | ${(r / bareRate).toFixed(2)}× | ${(r / naiveRate).toFixed(1)}× |`);
    }
    console.log('\nTargets (issue 10): 100-update jobs ≥ 0.90× raw; single-update jobs ≥ 0.85× bare pg-boss; freshness p99 ≤ 25 ms.');
    const ms = [...latencies].sort((a, b) => a - b);
    console.log(`\n| freshness at ${FRESHNESS_RATE} updates/s for ${FRESHNESS_SECONDS} s | p50 ms | p99 ms | max ms |`);
    console.log('|---|---:|---:|---:|');
    console.log(`| publish → committed (single-update jobs) | ${percentile(ms, 50).toFixed(1)} | ${percentile(ms, 99).toFixed(1)} | ${Math.max(...ms).toFixed(1)} |`);
    if (BASELINE_CLI) {
      const base = [...baseLatencies].sort((a, b) => a - b);
      console.log(`| baseline build (BENCH_BASELINE_CLI) | ${percentile(base, 50).toFixed(1)} | ${percentile(base, 99).toFixed(1)} | ${Math.max(...base).toFixed(1)} |`);
    }
  } finally {
    await producer?.stop({ graceful: false });
    await db.drop();
  }
}

export default { name: 'write', run } satisfies BenchSection;
