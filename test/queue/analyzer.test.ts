/**
 * The queue analyzer against a real job table: a backlog inserted after the last ANALYZE makes the
 * table stale, one pass analyzes it (the planner then knows the backlog), and a fresh table is left
 * alone; a drained backlog leaves dead rows, and one pass vacuums them away.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { MIN_CHANGED_ROWS, MIN_DEAD_ROWS, QueueAnalyzer, staleJobPartitions } from '../../src/queue/analyzer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { startProducer } from '../helpers/queue.js';

describe('queue analyzer', () => {
  let db: TestDatabase;
  let producer: PgBoss;
  const executor = () => ({ executeSql: (text: string, values?: unknown[]) => db.pool.query(text, values) });
  const reltuples = async () =>
    Number((await db.pool.query(`select reltuples from pg_class where oid = 'pgboss.job_common'::regclass`)).rows[0].reltuples);

  beforeAll(async () => {
    db = await createTestDatabase('analyzer');
    const daemon = await startDaemon({ databaseUrl: db.url }); // creates pg-boss's schema and queues
    await daemon.stop();
    producer = await startProducer(db.url);
  });

  afterAll(async () => {
    await producer?.stop({ graceful: false });
    await db?.drop();
  });

  it('analyzes the job table once a backlog changed it past the threshold, and not before', async () => {
    await db.pool.query('analyze pgboss.job_common');
    expect(await staleJobPartitions(executor(), 'pgboss')).toEqual([]);
    const backlog = MIN_CHANGED_ROWS + 5_000;
    for (let i = 0; i < backlog; i += 5_000) {
      await producer.insert('mirrorstate-updates', Array.from({ length: 5_000 }, (_, k) => ({ data: { n: i + k } })));
    }
    const analyzer = new QueueAnalyzer({ db: executor(), bossSchema: 'pgboss', logger: createLogger('silent') });
    // Table statistics reach pg_stat_user_tables within about a second of the inserts committing.
    await waitFor('the backlog counted as changes', async () => (await staleJobPartitions(executor(), 'pgboss')).some((p) => p.table === 'pgboss.job_common'), 30_000);
    expect(await reltuples()).toBeLessThan(backlog);

    expect(await analyzer.runOnce()).toEqual([{ table: 'pgboss.job_common', action: 'analyze' }]);
    expect(await reltuples()).toBeGreaterThanOrEqual(backlog);
    expect(await staleJobPartitions(executor(), 'pgboss')).toEqual([]);
    expect(await analyzer.runOnce()).toEqual([]);
    await analyzer.stop();
    await analyzer.stop();
  });

  it('vacuums the job table once a drained backlog left more dead rows than the threshold', async () => {
    const dead = async () => {
      await db.pool.query('select pg_stat_clear_snapshot()');
      const { rows } = await db.pool.query(`select n_dead_tup, vacuum_count from pg_stat_user_tables where relid = 'pgboss.job_common'::regclass`);
      return { dead: Number(rows[0].n_dead_tup), vacuums: Number(rows[0].vacuum_count) };
    };
    await db.pool.query('vacuum analyze pgboss.job_common');
    const before = await dead();
    expect(await staleJobPartitions(executor(), 'pgboss')).toEqual([]);
    // What a drain leaves: every job deleted (the settle), fewer than MIN_CHANGED_ROWS live ones.
    await db.pool.query(`delete from pgboss.job where name = 'mirrorstate-updates'`);
    await waitFor('the dead rows counted', async () => (await dead()).dead > before.dead + MIN_DEAD_ROWS, 30_000);
    expect(await staleJobPartitions(executor(), 'pgboss')).toEqual([{ table: 'pgboss.job_common', action: 'vacuum' }]);

    const analyzer = new QueueAnalyzer({ db: executor(), bossSchema: 'pgboss', logger: createLogger('silent') });
    expect(await analyzer.runOnce()).toEqual([{ table: 'pgboss.job_common', action: 'vacuum' }]);
    // How many dead rows a VACUUM can remove is the server's business (a snapshot held open
    // elsewhere keeps them); that it ran is the analyzer's.
    expect((await dead()).vacuums).toBe(before.vacuums + 1);
    await analyzer.stop();
  });

  it('checks once at start, not only after its first interval', async () => {
    await db.pool.query('vacuum analyze pgboss.job_common');
    const backlog = MIN_CHANGED_ROWS + 5_000;
    for (let i = 0; i < backlog; i += 5_000) {
      await producer.insert('mirrorstate-updates', Array.from({ length: 5_000 }, (_, k) => ({ data: { n: i + k } })));
    }
    await waitFor('the backlog counted as changes', async () => (await staleJobPartitions(executor(), 'pgboss')).length > 0, 30_000);
    expect(await reltuples()).toBeLessThan(backlog);
    // An hour between checks: only the check at start can analyze within the wait below.
    const analyzer = new QueueAnalyzer({ db: executor(), bossSchema: 'pgboss', logger: createLogger('silent'), intervalMs: 3_600_000 });
    analyzer.start();
    try {
      await waitFor('the backlog analyzed', async () => (await reltuples()) >= backlog, 10_000);
    } finally {
      await analyzer.stop();
    }
  });
});
