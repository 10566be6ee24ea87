/**
 * Migrations 0009, 0010 and 0011 (the PeerDB source's memory of the slot sample, of a mirror's entry
 * into resync, setup or snapshot, and of its tables) on a catalog the build before each made and filled: its mirrors,
 * the source's memory of what it published (`peerdb_published`, as that build wrote it), and a
 * backlog of updates still waiting in the queue. The daemon of this build migrates at start, drains
 * the backlog, keeps every old row, and its PeerDB source carries on from the old memory: it
 * publishes what changed while no daemon ran (a status, a drop, a new mirror) and nothing else.
 */
import { spawnSync } from 'node:child_process';
import type { PgBoss } from 'pg-boss';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../src/catalog/migrate.js';
import { ensureQueues } from '../../src/queue/boss.js';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase } from '../helpers/db.js';
import { createPeerdbCatalog, type PeerdbCatalog } from '../helpers/peerdb.js';
import { migrateBefore, writeAsPreviousBuild } from '../helpers/previousCatalog.js';
import { insertJobs, startProducer } from '../helpers/queue.js';
import { scrape, seriesValue } from '../helpers/scrape.js';
import { invariantViolations, SCHEMA } from '../reads/support.js';

/** peerdb_published's columns before each migration (0003's, then 0009's added). */
const PUBLISHED_BEFORE: Record<number, string[]> = {
  9: ['mirror', 'status', 'workflow_id', 'flow_type', 'source_peer', 'destination_peer', 'error_class', 'error_message',
    'rows_synced', 'lag_seconds', 'slot_lag_bytes', 'numbers_at', 'observed_at', 'seq', 'dropped', 'published_at'],
};
PUBLISHED_BEFORE[10] = [...PUBLISHED_BEFORE[9]!, 'slot_lag_sampled_at', 'slot_wal_status'];
PUBLISHED_BEFORE[11] = [...PUBLISHED_BEFORE[10], 'entered_at'];

const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

describe.each([9, 10, 11])('migration %i on the previous build\'s catalog', (version) => {
  it('migrates at start, drains the waiting backlog, keeps the old rows, and the PeerDB source carries on from its old memory', async () => {
    const peerdb: PeerdbCatalog = await createPeerdbCatalog(`mig${version}`);
    cleanups.push(() => peerdb.drop());
    for (const name of ['same', 'moved', 'gone']) await peerdb.peerdb.createFlow(name, { status: 1 });

    // What the source of the previous build published: the same poll, by this build's CLI on a
    // scratch catalog, keeping only the columns that build had.
    const scratch = await createTestDatabase(`mig${version}_scratch`);
    cleanups.push(() => scratch.drop());
    const env = { ...process.env, DATABASE_URL: scratch.url, MIRRORSTATE_PEERDB_URL: peerdb.readerUrl, MIRRORSTATE_LOG_LEVEL: 'warn' };
    for (const command of ['migrate', 'peerdb-sync']) {
      const run = spawnSync(process.execPath, [CLI, command], { env, encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
    }
    const columns = PUBLISHED_BEFORE[version]!;
    const { rows: memory } = await scratch.pool.query(`select ${columns.join(', ')} from ${SCHEMA}.peerdb_published order by mirror`);
    expect(memory.map((r) => r.mirror)).toEqual(['gone', 'moved', 'same']);

    const db = await createTestDatabase(`migration${String(version).padStart(4, '0')}`);
    cleanups.push(() => db.drop());
    await migrateBefore(db.pool, SCHEMA, version);
    await writeAsPreviousBuild(db.pool, SCHEMA, [
      ...memory.map((r) => ({ mirror: r.mirror as string, status: r.status as string, observedAt: (r.observed_at as Date).toISOString() })),
      { mirror: 'published', status: 'setup', observedAt: at(300), rowsSynced: 0 },
      { mirror: 'published', status: 'running', observedAt: at(200), rowsSynced: 500 },
    ]);
    for (const r of memory) {
      // The table has exactly the previous build's columns, so the record fills them all.
      await db.pool.query(`insert into ${SCHEMA}.peerdb_published select * from json_populate_record(null::${SCHEMA}.peerdb_published, $1::json)`,
        [JSON.stringify(r)]);
    }
    const { rows: memoryBefore } = await db.pool.query(`select * from ${SCHEMA}.peerdb_published order by mirror`);

    const producer: PgBoss = await startProducer(db.url);
    cleanups.push(() => producer.stop({ graceful: false }));
    await ensureQueues(producer);
    await insertJobs(producer, [
      { mirror: 'published', status: 'snapshot', observedAt: at(100), slotLagBytes: 1, slotLagSampledAt: at(101), slotWalStatus: 'extended',
        tables: [{ table: 'public.a', snapshot: { partitions: 2, partitionsSynced: 1 } }] },
      { updates: [{ mirror: 'new', status: 'running', observedAt: at(50), tables: [] }, { mirror: 'published', status: 'running', observedAt: at(40) }] },
    ]);
    const { rows: [sameBefore] } = await db.pool.query(`select * from ${SCHEMA}.mirrors where mirror = 'same'`);

    // While no daemon ran: one mirror paused, one dropped, one created.
    await peerdb.peerdb.setStatus('moved', 2);
    await peerdb.peerdb.drop('gone');
    await peerdb.peerdb.createFlow('fresh', { status: 1 });

    const daemon: DaemonProcess = await startDaemon({
      databaseUrl: db.url,
      env: { MIRRORSTATE_TRIM_INTERVAL: '1h', MIRRORSTATE_PEERDB_URL: peerdb.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s' },
    });
    cleanups.push(() => daemon.stop());
    await waitFor('the backlog applied', async () =>
      (await db.pool.query(`select 1 from ${SCHEMA}.mirrors where mirror = 'published' and status = 'running' and transitions_total = 4`)).rows.length === 1);
    await waitFor('what changed in PeerDB published', async () =>
      (await db.pool.query(`select 1 from ${SCHEMA}.mirrors where (mirror = 'moved' and status = 'paused') or (mirror = 'gone' and dropped_at is not null)
         or mirror = 'fresh'`)).rows.length === 3);
    await waitFor('a further poll', async () => (seriesValue(await scrape(daemon.url), 'mirrorstate_peerdb_poll_duration_seconds_count') ?? 0) >= 3);

    const { rows: [applied] } = await db.pool.query<{ version: number }>(`select max(version) as version from ${SCHEMA}.schema_migrations`);
    expect(applied?.version).toBe(loadMigrations().at(-1)?.version);

    // Only what changed was published: the unchanged mirror's row is as the previous build left it.
    expect(seriesValue(await scrape(daemon.url), 'mirrorstate_peerdb_published_total')).toBe(3);
    const { rows: [sameAfter] } = await db.pool.query(`select * from ${SCHEMA}.mirrors where mirror = 'same'`);
    // Columns later migrations added to mirrors hold their defaults: unknown, or false.
    const addedToMirrors = Object.keys(sameAfter).filter((c) => !(c in sameBefore));
    expect(sameAfter).toEqual({ ...sameBefore, ...Object.fromEntries(addedToMirrors.map((c) => [c, sameAfter[c] === false ? false : null])) });
    const { rows: memoryAfter } = await db.pool.query(`select * from ${SCHEMA}.peerdb_published order by mirror`);
    // The memory of it is kept, the columns the migrations added unknown (null).
    const sameMemory = memoryAfter.find((r) => r.mirror === 'same');
    const added = Object.fromEntries(Object.keys(sameMemory).filter((c) => !columns.includes(c)).map((c) => [c, null]));
    expect(Object.keys(added).length).toBeGreaterThan(0);
    expect(sameMemory).toEqual({ ...memoryBefore.find((r) => r.mirror === 'same'), ...added });
    expect(memoryAfter.map((r) => `${r.mirror}:${r.status}${r.dropped ? ':dropped' : ''}`)).toEqual(
      ['fresh:running', 'gone:terminated:dropped', 'moved:paused', 'same:running']);

    // The backlog, whole, into the columns and table the previous migrations added.
    const { rows: [published] } = await db.pool.query(
      `select rows_synced, slot_lag_bytes, slot_wal_status, slot_lag_sampled_at is not null as sampled, journal_length from ${SCHEMA}.mirrors where mirror = 'published'`);
    expect(published).toEqual({ rows_synced: 500, slot_lag_bytes: 1, slot_wal_status: 'extended', sampled: true, journal_length: 4 });
    const { rows: tables } = await db.pool.query(`select mirror, table_name from ${SCHEMA}.mirror_tables order by 1, 2`);
    expect(tables).toEqual([{ mirror: 'published', table_name: 'public.a' }]);
    const { rows: journals } = await db.pool.query(`select mirror, count(*)::int as n from ${SCHEMA}.journal group by 1 order by 1`);
    expect(journals).toEqual([
      { mirror: 'fresh', n: 1 }, { mirror: 'gone', n: 2 }, { mirror: 'moved', n: 2 }, { mirror: 'new', n: 1 }, { mirror: 'published', n: 4 }, { mirror: 'same', n: 1 },
    ]);
    expect(await invariantViolations(db.pool)).toEqual([]);
  });
});
