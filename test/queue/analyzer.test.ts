/**
 * The queue analyzer against a real job table: a backlog inserted after the last ANALYZE makes the
 * table stale, one pass analyzes it (the planner then knows the backlog), and a fresh table is left
 * alone.
 */
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { MIN_CHANGED_ROWS, QueueAnalyzer, staleJobPartitions } from '../../src/queue/analyzer.js';
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
    await waitFor('the backlog counted as changes', async () => (await staleJobPartitions(executor(), 'pgboss')).includes('pgboss.job_common'), 30_000);
    expect(await reltuples()).toBeLessThan(backlog);

    expect(await analyzer.runOnce()).toEqual(['pgboss.job_common']);
    expect(await reltuples()).toBeGreaterThanOrEqual(backlog);
    expect(await staleJobPartitions(executor(), 'pgboss')).toEqual([]);
    expect(await analyzer.runOnce()).toEqual([]);
    await analyzer.stop();
    await analyzer.stop();
  });
});
