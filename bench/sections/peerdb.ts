/**
 * `npm run bench peerdb`: the PeerDB source on a catalog of 5,000 mirrors with 1,000,000
 * cdc_batches rows and 500,000 peer_slot_size rows (plus 50,000 flow_errors and 20,000 partitions),
 * filled with generate_series in a bench database of its own, read by a SELECT-only role.
 *
 * Measured: EXPLAIN of every statement (no sequential scan of a history table); an idle poll's time
 * (read, decide, nothing to publish) p50/p99, in this process, against the daemon-free catalog; the
 * first import until every mirror is on the daemon's /metrics; and, with the daemon polling every
 * 1 s, the time from a committed status UPDATE in PeerDB's catalog to the new status on /metrics.
 */
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { createBoss, ensureQueues } from '../../src/queue/boss.js';
import { tryLead } from '../../src/source/peerdb/leader.js';
import { connectPeerdb } from '../../src/source/peerdb/poller.js';
import { readPeerdb, type Tails } from '../../src/source/peerdb/readPeerdb.js';
import { syncOnce } from '../../src/source/peerdb/sync.js';
import { startDaemon, waitFor } from '../../test/helpers/daemon.js';
import { createTestDatabase } from '../../test/helpers/db.js';
import { createPeerdbCatalog } from '../../test/helpers/peerdb.js';
import type { BenchSection } from '../index.js';
import { ms, percentile } from '../lib.js';

const MIRRORS = 5_000;
const BATCHES = 1_000_000;
const SLOT_SAMPLES = 500_000;
const ERRORS = 50_000;
const PARTITIONS = 20_000;
const IDLE_POLLS = 200;
const CHANGES = 40;
const log = createLogger('silent');

async function step(label: string, pool: pg.Pool, sql: string): Promise<void> {
  const started = performance.now();
  process.stderr.write(`  ${label} …`);
  await pool.query(sql);
  process.stderr.write(` ${ms(performance.now() - started)}\n`);
}

async function fill(pool: pg.Pool): Promise<void> {
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
  await step('table counts (2 per CDC mirror)', pool, `insert into peerdb_stats.cdc_table_aggregate_counts (flow_name, destination_table_name, total_count, last_updated_at)
    select name, 'public.t' || t, 12345 * t, now() - interval '1 hour' from flows, generate_series(1, 2) t where query_string is null`);
  await step(`${PARTITIONS.toLocaleString('en')} qrep partitions`, pool, `
    insert into peerdb_stats.qrep_runs (flow_name, run_uuid, parent_mirror_name)
      select 'clone_' || name || '_public_t_r', 'r-' || name, name from flows where query_string is null and id <= ${PARTITIONS / 4};
    insert into peerdb_stats.qrep_partitions (flow_name, run_uuid, partition_uuid, restart_count, rows_synced, end_time, parent_mirror_name)
      select 'clone_' || f.name || '_public_t_r', 'r-' || f.name, p::text, 0, 1000, now() - interval '2 hours', f.name
        from (select name from flows where query_string is null and id <= ${PARTITIONS / 4}) f, generate_series(1, 4) p`);
  await step(`${SLOT_SAMPLES.toLocaleString('en')} peer_slot_size samples (round robin, as PeerDB's per-minute job writes)`, pool, `
    insert into peerdb_stats.peer_slot_size (slot_name, peer_name, slot_size, updated_at)
    select 'peerflow_slot_mirror_' || lpad((1 + (s % ${MIRRORS * 0.8}) / 4 * 5 + (s % ${MIRRORS * 0.8}) % 4)::int::text, 5, '0'),
           'pg_source', s % 1000, now() - make_interval(secs => ${SLOT_SAMPLES} - s)
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

const section: BenchSection = {
  name: 'peerdb',
  async run() {
    const catalog = await createPeerdbCatalog('bench');
    const mirrorstate = await createTestDatabase('peerdb_bench');
    try {
      process.stderr.write(`filling PeerDB's catalog:\n`);
      await fill(catalog.db.pool);
      const peerdb = await connectPeerdb(catalog.readerUrl, log);
      const first = await readPeerdb(peerdb.client, peerdb.shape, null);
      await explainAll(peerdb.client, first.tails);

      // First import, through the daemon: from "running" to every mirror on /metrics.
      let daemon = await startDaemon({ databaseUrl: mirrorstate.url, env: { MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s' } });
      const startedAt = performance.now();
      const onMetrics = async () => ((await (await fetch(`${daemon.url}/metrics`)).text()).match(/^peerdb_mirror_info\{/gm) ?? []).length;
      await waitFor('every mirror on /metrics', async () => (await onMetrics()) === MIRRORS, 120_000, 100);
      const importMs = performance.now() - startedAt;
      await daemon.stop();

      // Idle polls, in this process, as the leader (the daemon is stopped): nothing changed.
      const pool = new pg.Pool({ connectionString: mirrorstate.url, max: 2 });
      const boss = createBoss({ connectionString: mirrorstate.url, schema: 'pgboss', max: 2, logger: log, worker: false });
      await boss.start();
      await migrate(pool, 'mirrorstate', log);
      await ensureQueues(boss);
      const lead = (await tryLead(mirrorstate.url, 'mirrorstate', 'bench', log))!;
      let tails: Tails | null = null;
      let memory: Awaited<ReturnType<typeof syncOnce>>['memory'] | null = null;
      const idle: number[] = [];
      let publishedWhileIdle = 0;
      for (let i = 0; i < IDLE_POLLS + 5; i++) {
        const t0 = performance.now();
        const summary = await syncOnce({ peerdb: peerdb.client, shape: peerdb.shape, catalog: lead.client, schema: 'mirrorstate', boss, queueSharesCatalog: true, tails, memory });
        const took = performance.now() - t0;
        tails = summary.tails;
        memory = summary.memory;
        if (i >= 5) idle.push(took); // the first is a leader's first poll (name-index reads)
        if (i >= 5) publishedWhileIdle += summary.published;
        if (i === 0) console.log(`\nA leader's first poll (read through the name indexes, decide, nothing to publish): ${ms(took)}`);
      }
      idle.sort((a, b) => a - b);
      await lead.release();
      await boss.stop({ graceful: false, timeout: 1000 });
      await pool.end();

      // Status change → /metrics at a 1 s interval.
      daemon = await startDaemon({ databaseUrl: mirrorstate.url, env: { MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s' } });
      // Leading, and its first poll (the one that reads history by name index) done.
      await waitFor('the daemon leading', async () => /mirrorstate_peerdb_poll_duration_seconds_count [1-9]/.test(await (await fetch(`${daemon.url}/metrics`)).text()), 60_000);
      const latencies: number[] = [];
      for (let i = 0; i < CHANGES; i++) {
        const name = `mirror_${String(1 + Math.floor(Math.random() * MIRRORS)).padStart(5, '0')}`;
        const { rows } = await catalog.db.pool.query<{ status: number }>(`select status from flows where name = $1`, [name]);
        const next = rows[0]!.status === 1 ? 2 : 1;
        await catalog.db.pool.query(`update flows set status = $1, updated_at = now() where name = $2`, [next, name]);
        const committed = performance.now();
        const want = `peerdb_mirror_status{mirror="${name}",status="${next === 1 ? 'running' : 'paused'}"} 1`;
        await waitFor(`${name} on /metrics`, async () => (await (await fetch(`${daemon.url}/metrics`)).text()).includes(want), 30_000, 20);
        latencies.push(performance.now() - committed);
        process.stderr.write(`\r  status changes: ${i + 1} / ${CHANGES}`);
      }
      process.stderr.write('\n');
      latencies.sort((a, b) => a - b);
      await daemon.stop();
      await peerdb.client.end();

      console.log(`\n| measure (${MIRRORS.toLocaleString('en')} mirrors, ${BATCHES.toLocaleString('en')} batches, ${SLOT_SAMPLES.toLocaleString('en')} slot samples) | p50 | p99 | target |`);
      console.log('|---|---:|---:|---:|');
      console.log(`| idle poll (read + decide, ${IDLE_POLLS} polls, ${publishedWhileIdle} published) | ${ms(percentile(idle, 50))} | ${ms(percentile(idle, 99))} | p99 ≤ 50 ms |`);
      console.log(`| first import: daemon running → all mirrors on /metrics | ${ms(importMs)} | | ≤ 5,000 ms |`);
      console.log(`| status UPDATE committed → /metrics, 1 s interval (${CHANGES} changes) | ${ms(percentile(latencies, 50))} | ${ms(percentile(latencies, 99))} | p99 ≤ 2,000 ms |`);
    } finally {
      if (process.env.BENCH_KEEP) console.log(`kept: ${catalog.readerUrl} ${mirrorstate.url}`);
      else {
        await mirrorstate.drop();
        await catalog.drop();
      }
    }
  },
};

export default section;
