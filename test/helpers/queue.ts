/** A producer's pg-boss instance for tests: inserts raw job data, exactly as a worker would. */
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
