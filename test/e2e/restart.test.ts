/**
 * PostgreSQL restarted under load, on a private server the test starts itself: the daemon logs the
 * outage once, /readyz answers 503 while it lasts, work resumes within 10 s of the server being
 * back, and the final catalog equals the model (nothing lost, nothing duplicated). Once with the
 * catalog and queue in one database, once with the queue's database alone restarted.
 */
import type { PgBoss } from 'pg-boss';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { expectCatalogMatchesModel, generateUpdates, packJobs, pendingJobs, rng, shuffle } from '../helpers/model.js';
import { type PrivatePostgres, startPrivatePostgres } from '../helpers/privatePostgres.js';
import { startProducer } from '../helpers/queue.js';

const ENV = { MIRRORSTATE_BATCH_SIZE: '25', MIRRORSTATE_CONCURRENCY: '2' };
const OUTAGE_LINE = /"msg":"[a-z ]*database unreachable: work pauses/g;
const BACK_LINE = /"msg":"[a-z ]*database reachable again"/g;

async function readyStatus(daemon: DaemonProcess): Promise<number> {
  try {
    return (await fetch(`${daemon.url}/readyz`)).status;
  } catch {
    return 0;
  }
}

/**
 * Inserts the jobs in slices at a steady pace (a producer's load lasts through the restart), retrying
 * a slice the outage refused.
 */
async function publishUnderLoad(producer: PgBoss, jobs: object[], refused: { count: number }): Promise<void> {
  for (let i = 0; i < jobs.length; i += 10) {
    await new Promise((resolve) => setTimeout(resolve, 60));
    const slice = jobs.slice(i, i + 10).map((data) => ({ data }));
    for (;;) {
      try {
        await producer.insert('mirrorstate-updates', slice);
        break;
      } catch {
        // A slice whose commit went through unacknowledged goes in twice: a duplicate the catalog
        // must absorb like any other.
        refused.count++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}

describe.each([
  { what: 'catalog and queue in one database', separateQueue: false },
  { what: "the queue's own database", separateQueue: true },
])('PostgreSQL restarted under load: $what', ({ separateQueue }) => {
  let server: PrivatePostgres | undefined;
  let catalog: TestDatabase | undefined;
  let daemon: DaemonProcess | undefined;
  let producer: PgBoss | undefined;
  let catalogPool: pg.Pool | undefined;

  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await producer?.stop({ graceful: false }).catch(() => undefined);
    await catalogPool?.end();
    await catalog?.drop();
    await server?.destroy();
  });

  it('logs it once, is not ready while it lasts, resumes within 10 s, and loses and duplicates nothing', async () => {
    server = await startPrivatePostgres();
    const queueUrl = await server.createDatabase('restart');
    let catalogUrl = queueUrl;
    if (separateQueue) {
      catalog = await createTestDatabase('restart_catalog');
      catalogUrl = catalog.url;
    }
    catalogPool = new pg.Pool({ connectionString: catalogUrl, max: 2 });
    catalogPool.on('error', () => undefined); // idle clients cut off by the restart
    const queuePool = separateQueue ? new pg.Pool({ connectionString: queueUrl, max: 2 }) : catalogPool;
    queuePool.on('error', () => undefined);

    daemon = await startDaemon({
      databaseUrl: catalogUrl,
      env: { ...ENV, ...(separateQueue ? { MIRRORSTATE_QUEUE_DATABASE_URL: queueUrl } : {}) },
    });
    producer = await startProducer(queueUrl);
    producer.on('error', () => undefined);

    const random = rng(11);
    const updates = generateUpdates(11, 40, 40);
    const stream = shuffle([...updates, ...updates.filter(() => random() < 0.2)], random);
    const jobs = packJobs(stream, random, 5);
    const refused = { count: 0 };
    const publishing = publishUnderLoad(producer, jobs, refused);

    const journalRows = async () => {
      for (;;) {
        try {
          return Number((await catalogPool!.query('select count(*) from mirrorstate.journal')).rows[0].count);
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 20)); // the catalog itself is restarting
        }
      }
    };
    await waitFor('a third of the stream in the catalog', async () => (await journalRows()) >= updates.length / 3, 60_000, 20);

    await server.stop();
    const stoppedAt = performance.now();
    await waitFor('/readyz to answer 503 while the server is down', async () => (await readyStatus(daemon!)) === 503, 20_000, 50);
    await waitFor('the outage in the log', () => (daemon!.output().match(OUTAGE_LINE) ?? []).length > 0, 20_000, 50);
    // Keep it down a little while longer, as a real restart would be: retries must not flood the log.
    await waitFor('two seconds of outage', () => performance.now() - stoppedAt > 2_000, 5_000, 50);
    expect(await readyStatus(daemon)).toBe(503);

    await server.start();
    const backAt = performance.now();
    const rowsAtBack = await journalRows();
    await waitFor('the first batch committed after the restart', async () => (await journalRows()) > rowsAtBack, 10_000, 10);
    const resumedMs = Math.round(performance.now() - backAt);
    console.log(`${separateQueue ? 'queue database' : 'database'} back → first committed batch: ${resumedMs} ms (outage ${Math.round(backAt - stoppedAt)} ms, ${refused.count} inserts refused)`);
    await waitFor('/readyz to answer 200 again', async () => (await readyStatus(daemon!)) === 200, 10_000, 50);

    await publishing;
    await waitFor('the queue to drain', async () => (await pendingJobs(queuePool)) === 0, 90_000, 100);
    await expectCatalogMatchesModel(catalogPool, updates);

    const output = daemon.output();
    expect(output.match(OUTAGE_LINE) ?? []).toHaveLength(1);
    expect(output.match(BACK_LINE) ?? []).toHaveLength(1);
    // Not a flood: no error lines at all, and no other warnings than the outage's.
    const loud = output.split('\n').filter((line) => /"level":(40|50|60)/.test(line));
    expect(loud, loud.join('\n')).toHaveLength(1);
    expect(await daemon.stop()).toBe(0);
    daemon = undefined;
    if (separateQueue) await queuePool.end();
  });
});
