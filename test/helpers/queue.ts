/** A producer's pg-boss instance for tests: inserts raw job data, exactly as a worker would. */
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { createLogger } from '../../src/log.js';
import { createBoss, UPDATES_QUEUE } from '../../src/queue/boss.js';

export async function startProducer(url: string): Promise<PgBoss> {
  const boss = createBoss({ connectionString: url, schema: 'pgboss', max: 4, logger: createLogger('silent'), worker: false });
  await boss.start();
  return boss;
}

/** Inserts job data as given (valid or not), in chunks, in order. */
export async function insertJobs(boss: PgBoss, data: object[], queue = UPDATES_QUEUE): Promise<void> {
  for (let i = 0; i < data.length; i += 500) {
    await boss.insert(queue, data.slice(i, i + 500).map((d) => ({ data: d })));
  }
}

/**
 * From now on, records every job inserted into pg-boss's job table, with its queue and data. The
 * daemon deletes each job it has written, so what is in the table says little about what was
 * enqueued; this log says exactly that. A trigger on the partitioned table reaches every partition.
 */
export async function logJobs(pool: pg.Pool, bossSchema = 'pgboss'): Promise<void> {
  await pool.query(`
    create table if not exists ${bossSchema}.test_job_log (id bigint generated always as identity, name text not null, data jsonb);
    create or replace function ${bossSchema}.test_log_job() returns trigger language plpgsql as $$
      begin insert into ${bossSchema}.test_job_log (name, data) values (new.name, new.data); return null; end $$;
    create or replace trigger test_log_job after insert on ${bossSchema}.job
      for each row execute function ${bossSchema}.test_log_job();`);
}

/** Jobs enqueued on `queue` since logJobs. */
export async function loggedJobs(pool: pg.Pool, queue = UPDATES_QUEUE, bossSchema = 'pgboss'): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`select count(*)::int as n from ${bossSchema}.test_job_log where name = $1`, [queue]);
  return rows[0]?.n ?? 0;
}

/**
 * Jobs of `queue` in the table, and how many of them another transaction could lock now. A job
 * claimed by a batch in flight is present but not free: its claim deletes it only at commit.
 */
export async function claimableJobs(pool: pg.Pool, queue = UPDATES_QUEUE, bossSchema = 'pgboss'): Promise<{ present: number; free: number }> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const { rows } = await client.query<{ present: number; free: number }>(
      `select (select count(*)::int from ${bossSchema}.job where name = $1) as present,
              (select count(*)::int from (select 1 from ${bossSchema}.job where name = $1 for update skip locked) as free) as free`,
      [queue],
    );
    return rows[0]!;
  } finally {
    await client.query('rollback');
    client.release();
  }
}
