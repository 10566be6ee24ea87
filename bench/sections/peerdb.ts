/**
 * `npm run bench peerdb`: the PeerDB source on a catalog of 5,000 mirrors (4,000 CDC) with 100,000
 * tables (25 per CDC mirror: their counts, one initial-load run each), 200,000 partitions (two per
 * load; 8,000 loads with their second partition still waiting), 1,000,000 cdc_batches rows, 500,000 peer_slot_size rows and
 * 50,000 flow_errors, filled with generate_series in a bench database of its own, read by a
 * SELECT-only role.
 *
 * Measured, for this build and, side by side in the same run, another build's (BENCH_BASELINE_DIST
 * names its dist/, e.g. a worktree of an older commit built with `npm ci && npm run build`): EXPLAIN
 * of every statement (this build; no sequential scan of a history table); an idle poll's time (read,
 * decide, nothing to publish) p50/p99, in this process; the first import until every mirror is in the catalog (watched by a count), then on
 * the daemon's /metrics; and, with the daemon polling every 1 s, the time from a committed change in
 * PeerDB's catalog to /metrics: a status UPDATE, and (this build) a table's partition finishing.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { createLogger } from '../../src/log.js';
import { connectPeerdb } from '../../src/source/peerdb/poller.js';
import { readPeerdb, type Tails } from '../../src/source/peerdb/readPeerdb.js';
import { startDaemon, waitFor } from '../../test/helpers/daemon.js';
import { createTestDatabase } from '../../test/helpers/db.js';
import { createPeerdbCatalog } from '../../test/helpers/peerdb.js';
import type { BenchSection } from '../index.js';
import { countInBody, ms, percentile } from '../lib.js';

const MIRRORS = 5_000;
const BATCHES = 1_000_000;
const SLOT_SAMPLES = 500_000;
const ERRORS = 50_000;
const TABLES_PER_MIRROR = 25;
/** Per table, one initial-load run of two partitions; the first RUNNING_LOADS tables of each CDC mirror
 * have their second partition still running. */
const RUNNING_LOADS = 2;
const IDLE_POLLS = 200;
/** How often the bench scrapes while it waits for a change: /metrics of 100,000 tables is about
 * 50 MB of text, and scraping it back to back would measure the scrapes, not the change. */
const SCRAPE_EVERY_MS = 250;
const CHANGES = 40;
const log = createLogger('silent');

async function step(label: string, pool: pg.Pool, sql: string): Promise<void> {
  const started = performance.now();
  process.stderr.write(`  ${label} …`);
  await pool.query(sql);
  process.stderr.write(` ${ms(performance.now() - started)}\n`);
}

export async function fill(pool: pg.Pool): Promise<void> {
  await step('peers', pool, `insert into peers (name, type, options) values ('pg_source', 3, '\\x00'), ('ch_dest', 8, '\\x00')`);
  // 4 of 5 mirrors CDC from Postgres, 1 of 5 QRep.
  await step(`${MIRRORS} flows`, pool, `insert into flows (name, source_peer, destination_peer, workflow_id, query_string, status)
    select 'mirror_' || lpad(i::text, 5, '0'), 1, 2, 'mirror_' || i || '-peerflow',
           case when i % 5 = 0 then 'select * from t where id between {{.start}} and {{.end}}' end, 1
      from generate_series(1, ${MIRRORS}) i`);
  await step('cdc_flows', pool, `insert into peerdb_stats.cdc_flows select name, 0, 0 from flows where query_string is null`);
  await step(`${BATCHES.toLocaleString('en')} cdc_batches`, pool, `insert into peerdb_stats.cdc_batches
      (flow_name, batch_id, rows_in_batch, batch_start_lsn, batch_end_lsn, start_time, end_time, sync_time)
    select f.name, b, 100, 0, 0, now() - make_interval(mins => 300 - b), now() - make_interval(mins => 300 - b), now() - make_interval(mins => 300 - b)
      from (select name from flows where query_string is null) f, generate_series(1, ${BATCHES / (MIRRORS * 0.8)}) b`);
  await step(`table counts (${TABLES_PER_MIRROR} per CDC mirror)`, pool, `insert into peerdb_stats.cdc_table_aggregate_counts (flow_name, destination_table_name, total_count, last_updated_at)
    select name, 'public.t' || t, 12345 * t, now() - interval '1 hour' from flows, generate_series(${RUNNING_LOADS + 1}, ${TABLES_PER_MIRROR}) t where query_string is null`);
  await step(`${(MIRRORS * 0.8 * TABLES_PER_MIRROR).toLocaleString('en')} initial-load runs, ${(MIRRORS * 0.8 * TABLES_PER_MIRROR * 2).toLocaleString('en')} partitions`, pool, `
    insert into peerdb_stats.qrep_runs (flow_name, run_uuid, source_table, destination_table, parent_mirror_name)
      select 'clone_' || name || '_public_t' || t || '_r', 'r-' || name || '-' || t, 'public.t' || t, 'public.t' || t, name
        from flows, generate_series(1, ${TABLES_PER_MIRROR}) t where query_string is null;
    insert into peerdb_stats.qrep_partitions (flow_name, run_uuid, partition_uuid, restart_count, rows_synced, start_time, end_time, parent_mirror_name)
      select r.flow_name, r.run_uuid, p::text, 0, case when p = 1 or r.t > ${RUNNING_LOADS} then 1000 end,
             case when p = 1 or r.t > ${RUNNING_LOADS} then now() - interval '3 hours' end,
             case when p = 1 or r.t > ${RUNNING_LOADS} then now() - interval '2 hours' end, r.parent_mirror_name
        from (select flow_name, run_uuid, parent_mirror_name, substring(destination_table from 9)::int as t from peerdb_stats.qrep_runs) r,
             generate_series(1, 2) p`);
  // Every slot once a minute, as PeerDB's sampler writes (PEERDB.md: ~1/min per CDC flow), except
  // one slot in ten whose samples stopped three hours ago (PeerDB samples none during an initial
  // load or while the slot is missing).
  await step(`${SLOT_SAMPLES.toLocaleString('en')} peer_slot_size samples (every slot once a minute, one in ten stopped 3 h ago)`, pool, `
    insert into peerdb_stats.peer_slot_size (slot_name, peer_name, slot_size, updated_at)
    select 'peerflow_slot_mirror_' || lpad((1 + (s % ${MIRRORS * 0.8}) / 4 * 5 + (s % ${MIRRORS * 0.8}) % 4)::int::text, 5, '0'),
           'pg_source', s % 1000,
           now() - make_interval(mins => (${SLOT_SAMPLES} - s) / ${MIRRORS * 0.8}) - case when s % ${MIRRORS * 0.8} % 10 = 0 then interval '3 hours' else interval '0' end
      from generate_series(1, ${SLOT_SAMPLES}) s`);
  await step(`${ERRORS.toLocaleString('en')} flow_errors`, pool, `insert into peerdb_stats.flow_errors (flow_name, error_message, error_type, error_timestamp)
    select 'mirror_' || lpad((1 + e % ${MIRRORS})::text, 5, '0'), 'dial tcp: connection refused', (array['error', 'warn', 'info'])[1 + e % 3],
           now() - interval '3 hours' + make_interval(secs => e / 10)
      from generate_series(1, ${ERRORS}) e`);
  await step('vacuum analyze', pool, 'vacuum analyze');
}

/** Every statement a poll runs, EXPLAINed as the SELECT-only role sees them. */
async function explainAll(client: pg.Client, tails: Tails): Promise<void> {
  const seen: string[] = [];
  const query = client.query.bind(client);
  // Record each statement readPeerdb runs, then EXPLAIN it with the same parameters.
  const statements: [string, unknown[] | undefined][] = [];
  (client as unknown as { query: unknown }).query = (q: string | { text: string }, values?: unknown[]) => {
    const text = typeof q === 'string' ? q : q.text;
    if (/^\s*select/i.test(text)) statements.push([text, values]);
    return query(q as string, values);
  };
  const { shape } = { shape: (await import('../../src/source/peerdb/readPeerdb.js')).readShape };
  const s = await shape(client);
  await readPeerdb(client, s, null);
  await readPeerdb(client, s, tails);
  (client as unknown as { query: unknown }).query = query;
  for (const [text, values] of statements) {
    if (text.includes('information_schema')) continue;
    const { rows } = await client.query(`explain ${text}`, values);
    const plan = rows.map((r) => r['QUERY PLAN'] as string).join('\n');
    const seqScans = [...plan.matchAll(/Seq Scan on (\S+)/g)].map((m) => m[1]);
    const first = text.trim().split('\n')[0]!.slice(0, 70);
    seen.push(`  ${seqScans.length ? `seq scan on ${seqScans.join(', ')}` : 'no seq scan'} — ${first}`);
  }
  console.log('Plans (each statement of a first poll, then of a later poll):');
  console.log(seen.join('\n'));
}

/** A build's modules, loaded from its dist/ (the same calls in this build and older ones). */
interface Build {
  label: string;
  cli: string;
  tables: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  mod: Record<'migrate' | 'boss' | 'leader' | 'poller' | 'sync', any>;
}

async function loadBuild(label: string, dist: string): Promise<Build> {
  const at = (path: string) => import(pathToFileURL(join(dist, path)).href);
  const cli = [join(dist, 'cli/index.js'), join(dist, 'cli.js')].find((p) => existsSync(p));
  if (!cli) throw new Error(`BENCH_BASELINE_DIST: no cli/index.js or cli.js in ${dist}`);
  return {
    label, cli, tables: existsSync(join(dist, 'source/peerdb/tables.js')),
    mod: {
      migrate: await at('catalog/migrate.js'), boss: await at('queue/boss.js'), leader: await at('source/peerdb/leader.js'),
      poller: await at('source/peerdb/poller.js'), sync: await at('source/peerdb/sync.js'),
    },
  };
}

interface Measured {
  catalogMs: number;
  importMs: number;
  firstPollMs: number;
  idle: number[];
  publishedWhileIdle: number;
  statusChanges: number[];
  tableChanges: number[];
  /** The same changes seen in the read API (`GET /api/v1/mirrors/{mirror}`, polled every 50 ms). */
  statusApi: number[];
  tableApi: number[];
}

const daemonEnv = (readerUrl: string) => ({ MIRRORSTATE_PEERDB_URL: readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s' });
type Answer = { mirror: { status: string }; tables?: { table: string; snapshot: { partitionsSynced: number | null } | null }[] };
async function answer(url: string, mirror: string): Promise<Answer | undefined> {
  const res = await fetch(`${url}/api/v1/mirrors/${mirror}`);
  return res.status === 200 ? ((await res.json()) as Answer) : undefined;
}
const randomMirror = () => `mirror_${String(1 + Math.floor(Math.random() * MIRRORS)).padStart(5, '0')}`;

async function measure(build: Build, peerdbPool: pg.Pool, readerUrl: string, unfinished: { mirror: string; table: string; run: string }[]): Promise<Measured> {
  const mirrorstate = await createTestDatabase('peerdb_bench');
  try {
    process.stderr.write(`${build.label}:\n`);
    // First import, through the daemon: from "running" to every mirror on /metrics. The catalog is
    // watched meanwhile (a count every 100 ms), and /metrics scraped once it holds every mirror:
    // scraping 50 MB back to back all along would take the daemon's CPU from the import it measures.
    let daemon = await startDaemon({ cli: build.cli, databaseUrl: mirrorstate.url, env: daemonEnv(readerUrl) });
    const startedAt = performance.now();
    const inCatalog = async () => (await mirrorstate.pool.query<{ n: number }>('select count(*)::int as n from mirrorstate.mirrors')).rows[0]!.n;
    await waitFor('every mirror in the catalog', async () => (await inCatalog()) === MIRRORS, 120_000, 100);
    const catalogMs = performance.now() - startedAt;
    const onMetrics = () => countInBody(`${daemon.url}/metrics`, '\npeerdb_mirror_info{');
    await waitFor('every mirror on /metrics', async () => (await onMetrics()) === MIRRORS, 120_000, SCRAPE_EVERY_MS);
    const importMs = performance.now() - startedAt;
    await daemon.stop();
    process.stderr.write(`  first import ${ms(catalogMs)} to the catalog, ${ms(importMs)} to /metrics\n`);

    // Idle polls, in this process, as the leader (the daemon is stopped): nothing changed.
    const { migrate } = build.mod.migrate;
    const { createBoss, ensureQueues } = build.mod.boss;
    const pool = new pg.Pool({ connectionString: mirrorstate.url, max: 2 });
    const boss = createBoss({ connectionString: mirrorstate.url, schema: 'pgboss', max: 2, logger: log, worker: false });
    await boss.start();
    await migrate(pool, 'mirrorstate', log);
    await ensureQueues(boss);
    const lead = (await build.mod.leader.tryLead(mirrorstate.url, 'mirrorstate', 'bench', log))!;
    const peerdb = await build.mod.poller.connectPeerdb(readerUrl, log);
    let tails: unknown = null;
    let memory: unknown = null;
    const idle: number[] = [];
    let publishedWhileIdle = 0;
    let firstPollMs = 0;
    for (let i = 0; i < IDLE_POLLS + 5; i++) {
      const t0 = performance.now();
      const summary = await build.mod.sync.syncOnce({ peerdb: peerdb.client, shape: peerdb.shape, catalog: lead.client, schema: 'mirrorstate', boss, queueSharesCatalog: true, tails, memory });
      const took = performance.now() - t0;
      tails = summary.tails;
      memory = summary.memory;
      if (i === 0) firstPollMs = took;
      if (i >= 5) idle.push(took); // the first is a leader's first poll (whole and name-index reads)
      if (i >= 5) publishedWhileIdle += summary.published;
      if (i % 20 === 0) process.stderr.write(`\r  idle polls: ${i} / ${IDLE_POLLS + 5}`);
    }
    process.stderr.write('\n');
    idle.sort((a, b) => a - b);
    await peerdb.client.end();
    await lead.release();
    await boss.stop({ graceful: false, timeout: 1000 });
    await pool.end();

    // Changes → /metrics at a 1 s interval, each on a mirror not changed before in this run (the
    // numbers interval of 30 s per mirror then holds nothing back).
    daemon = await startDaemon({ cli: build.cli, databaseUrl: mirrorstate.url, env: daemonEnv(readerUrl) });
    await waitFor('the daemon leading', async () => /mirrorstate_peerdb_poll_duration_seconds_count [1-9]/.test(await (await fetch(`${daemon.url}/metrics`)).text()), 60_000);
    const statusChanges: number[] = [];
    const statusApi: number[] = [];
    const tableApi: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const name = randomMirror();
      const { rows } = await peerdbPool.query<{ status: number }>(`select status from flows where name = $1`, [name]);
      const next = rows[0]!.status === 1 ? 2 : 1;
      await peerdbPool.query(`update flows set status = $1, updated_at = now() where name = $2`, [next, name]);
      const committed = performance.now();
      const status = next === 1 ? 'running' : 'paused';
      await waitFor(`${name} in the API`, async () => (await answer(daemon.url, name))?.mirror.status === status, 30_000, 50);
      statusApi.push(performance.now() - committed);
      const want = `peerdb_mirror_status{mirror="${name}",status="${status}"} 1\n`;
      await waitFor(`${name} on /metrics`, async () => (await countInBody(`${daemon.url}/metrics`, want)) > 0, 30_000, SCRAPE_EVERY_MS);
      statusChanges.push(performance.now() - committed);
      process.stderr.write(`\r  status changes: ${i + 1} / ${CHANGES}`);
    }
    process.stderr.write('\n');
    const tableChanges: number[] = [];
    for (let i = 0; build.tables && i < CHANGES && unfinished.length > 0; i++) {
      // A running load's last partition, waiting its turn, runs and finishes at once
      // (UpdateStartTimeForPartition, UpdateRowsSyncedForPartition, UpdateEndTimeForPartition).
      const { mirror, table, run } = unfinished.splice(Math.floor(Math.random() * unfinished.length), 1)[0]!;
      await peerdbPool.query(`update peerdb_stats.qrep_partitions set start_time = now() at time zone 'UTC' where run_uuid = $1 and partition_uuid = '2'`, [run]);
      await peerdbPool.query(`update peerdb_stats.qrep_partitions set rows_synced = 1000 where run_uuid = $1 and partition_uuid = '2'`, [run]);
      await peerdbPool.query(`update peerdb_stats.qrep_partitions set end_time = now() at time zone 'UTC' where run_uuid = $1 and partition_uuid = '2'`, [run]);
      const committed = performance.now();
      await waitFor(`${mirror} ${table} in the API`, async () =>
        (await answer(daemon.url, mirror))?.tables?.find((t) => t.table === table)?.snapshot?.partitionsSynced === 2, 60_000, 50);
      tableApi.push(performance.now() - committed);
      const want = `peerdb_mirror_table_snapshot_partitions_synced{mirror="${mirror}",table="${table}"} 2\n`;
      await waitFor(`${mirror} ${table} on /metrics`, async () => (await countInBody(`${daemon.url}/metrics`, want)) > 0, 60_000, SCRAPE_EVERY_MS);
      tableChanges.push(performance.now() - committed);
      process.stderr.write(`\r  table changes: ${i + 1} / ${CHANGES}`);
    }
    if (build.tables) process.stderr.write('\n');
    for (const list of [statusChanges, tableChanges, statusApi, tableApi]) list.sort((a, b) => a - b);
    await daemon.stop();
    return { catalogMs, importMs, firstPollMs, idle, publishedWhileIdle, statusChanges, tableChanges, statusApi, tableApi };
  } finally {
    await mirrorstate.drop();
  }
}

const section: BenchSection = {
  name: 'peerdb',
  async run() {
    const catalog = await createPeerdbCatalog('bench');
    try {
      process.stderr.write(`filling PeerDB's catalog:\n`);
      await fill(catalog.db.pool);
      const peerdb = await connectPeerdb(catalog.readerUrl, log);
      const first = await readPeerdb(peerdb.client, peerdb.shape, null);
      await explainAll(peerdb.client, first.tails);
      await peerdb.client.end();

      const builds = [await loadBuild('this build', resolve('dist'))];
      const baselineDist = process.env.BENCH_BASELINE_DIST;
      if (baselineDist) builds.push(await loadBuild(`baseline (${baselineDist})`, resolve(baselineDist)));
      // Loads still running, each mirror's once: a mirror's table changes are then never held back
      // by the numbers interval of an earlier change of the same mirror.
      const { rows: running } = await catalog.db.pool.query<{ mirror: string; table: string; run: string }>(
        `select distinct on (parent_mirror_name) parent_mirror_name as mirror, 'public.t' || substring(run_uuid from '[0-9]+$') as table, run_uuid as run
           from peerdb_stats.qrep_partitions where end_time is null order by parent_mirror_name, random()`,
      );
      const results: Measured[] = [];
      for (const build of builds) results.push(await measure(build, catalog.db.pool, catalog.readerUrl, running));

      const cells = (f: (m: Measured) => string) => results.map(f).join(' | ');
      console.log(`\n${MIRRORS.toLocaleString('en')} mirrors, ${(MIRRORS * 0.8 * TABLES_PER_MIRROR).toLocaleString('en')} tables, ${(MIRRORS * 0.8 * TABLES_PER_MIRROR * 2).toLocaleString('en')} partitions, ${BATCHES.toLocaleString('en')} batches, ${SLOT_SAMPLES.toLocaleString('en')} slot samples:\n`);
      console.log(`| measure | ${builds.map((b) => b.label).join(' | ')} | target |`);
      console.log(`|---|${builds.map(() => '---:').join('|')}|---:|`);
      console.log(`| idle poll p50 (read + decide, ${IDLE_POLLS} polls) | ${cells((m) => ms(percentile(m.idle, 50)))} | |`);
      console.log(`| idle poll p99 | ${cells((m) => ms(percentile(m.idle, 99)))} | ≤ 50 ms |`);
      console.log(`| published while idle | ${cells((m) => String(m.publishedWhileIdle))} | 0 |`);
      console.log(`| a leader's first poll, in process (nothing to publish) | ${cells((m) => ms(m.firstPollMs))} | |`);
      console.log(`| first import: daemon running → all mirrors in the catalog | ${cells((m) => ms(m.catalogMs))} | |`);
      console.log(`| first import: daemon running → all mirrors on /metrics | ${cells((m) => ms(m.importMs))} | ≤ 10,000 ms |`);
      const p = (list: number[], q: number) => (list.length ? ms(percentile(list, q)) : '–');
      console.log(`| status UPDATE → read API, 1 s interval, p50 / p99 (${CHANGES} changes) | ${cells((m) => `${p(m.statusApi, 50)} / ${p(m.statusApi, 99)}`)} | |`);
      console.log(`| a table's partition finished → read API, p50 / p99 | ${cells((m) => `${p(m.tableApi, 50)} / ${p(m.tableApi, 99)}`)} | |`);
      console.log(`| status UPDATE → /metrics, 1 s interval, p50 (${CHANGES} changes) | ${cells((m) => ms(percentile(m.statusChanges, 50)))} | |`);
      console.log(`| status UPDATE → /metrics, p99 | ${cells((m) => ms(percentile(m.statusChanges, 99)))} | ≤ 2,000 ms |`);
      console.log(`| a table's partition finished → /metrics, p50 | ${cells((m) => (m.tableChanges.length ? ms(percentile(m.tableChanges, 50)) : '–'))} | |`);
      console.log(`| a table's partition finished → /metrics, p99 | ${cells((m) => (m.tableChanges.length ? ms(percentile(m.tableChanges, 99)) : '–'))} | ≤ 2,000 ms |`);
    } finally {
      if (process.env.BENCH_KEEP) console.log(`kept: ${catalog.readerUrl}`);
      else await catalog.drop();
    }
  },
};

export default section;
