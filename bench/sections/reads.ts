/**
 * `npm run bench reads`: what a consistent read costs. GET /api/v1/mirrors/{mirror} reads through
 * readMirror (one REPEATABLE READ READ ONLY transaction: begin, three statements, commit), side by
 * side with the naive reader it replaces (the same three statements at READ COMMITTED, no
 * transaction, so its answers can be skewed), on the same database, same mirrors, same order.
 *
 * The catalog is filled with SQL (generate_series): 1,000 mirrors × 1,000 journal rows and 20
 * transitions each, in a bench database of its own, dropped at the end. Reads run from this process
 * on one connection at a time (latency, not throughput), at ?events=20 (the default) and 1000.
 */
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { readMirror } from '../../src/catalog/readMirror.js';
import { readMirrorNaive } from '../../test/helpers/readMirrorNaive.js';
import { createLogger } from '../../src/log.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import type { BenchSection } from '../index.js';
import { percentile } from '../lib.js';

const MIRRORS = 1_000;
const JOURNAL_PER_MIRROR = 1_000;
const TRANSITIONS_PER_MIRROR = 20;
const FILL_MIRRORS_PER_STEP = 100;
const READS = { 20: 2_000, 1000: 300 } as const;
const SCHEMA = 'mirrorstate';

const mirrorName = (i: number) => `mirror_${String(i).padStart(4, '0')}`;

async function fill(pool: pg.Pool): Promise<void> {
  await pool.query(
    `insert into ${SCHEMA}.mirrors (mirror, status, status_since, observed_at, seq, workflow_id, flow_type, rows_synced,
       transitions_total, journal_length, journal_oldest_at)
     select 'mirror_' || lpad(i::text, 4, '0'), 'running', now() - interval '1 hour', now() - interval '1 second', 0,
       'wf-' || i, 'cdc', i * 1000, $1::int, $2::int, now() - make_interval(secs => $2::int)
       from generate_series(1, $3::int) as i`,
    [TRANSITIONS_PER_MIRROR, JOURNAL_PER_MIRROR, MIRRORS],
  );
  for (let from = 1; from <= MIRRORS; from += FILL_MIRRORS_PER_STEP) {
    const to = Math.min(MIRRORS, from + FILL_MIRRORS_PER_STEP - 1);
    const started = performance.now();
    await pool.query(
      `insert into ${SCHEMA}.journal (mirror, observed_at, seq, status, applied, payload)
       select m, now() - make_interval(secs => j), 0, 'running', true,
              jsonb_build_object('mirror', m, 'status', 'running', 'observedAt', now() - make_interval(secs => j),
                                 'rowsSynced', j * 100, 'lagSeconds', j % 30, 'workflowId', 'wf-' || j)
         from (select 'mirror_' || lpad(i::text, 4, '0') as m from generate_series($1::int, $2::int) as i) as ms
        cross join generate_series(1, $3::int) as j`,
      [from, to, JOURNAL_PER_MIRROR],
    );
    await pool.query(
      `insert into ${SCHEMA}.transitions (mirror, from_status, to_status, at, seq)
       select m, case when k = 1 then null else 'paused' end, 'running', now() - make_interval(secs => 10000 - k), 0
         from (select 'mirror_' || lpad(i::text, 4, '0') as m from generate_series($1::int, $2::int) as i) as ms
        cross join generate_series(1, $3::int) as k`,
      [from, to, TRANSITIONS_PER_MIRROR],
    );
    process.stdout.write(
      `  filled mirrors ${from}–${to} of ${MIRRORS} (${((to * JOURNAL_PER_MIRROR) / 1e6).toFixed(1)} M journal rows) in ${Math.round(performance.now() - started)} ms\n`,
    );
  }
  await pool.query(`vacuum analyze ${SCHEMA}.mirrors, ${SCHEMA}.journal, ${SCHEMA}.transitions`);
}

type Reader = (mirror: string, events: number) => Promise<unknown>;

async function measure(reader: Reader, events: number, order: number[]): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (const i of order) {
    const started = performance.now();
    await reader(mirrorName(i), events);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function run(): Promise<void> {
  const name = `ms_bench_reads_${process.pid}`;
  await admin(`create database ${name}`);
  // Two connections: one is what a read uses; the second lets the pool never wait.
  const pool = new pg.Pool({ connectionString: databaseUrl(name), max: 2 });
  try {
    await migrate(pool, SCHEMA, createLogger('silent'));
    console.log(`filling ${MIRRORS} mirrors × ${JOURNAL_PER_MIRROR} journal rows, ${TRANSITIONS_PER_MIRROR} transitions each…`);
    await fill(pool);
    const readers: [string, Reader][] = [
      ['snapshot (readMirror)', (m, events) => readMirror(pool, SCHEMA, m, { events })],
      ['naive, READ COMMITTED (skews)', (m, events) => readMirrorNaive(pool, SCHEMA, m, { events })],
    ];
    const rows: string[] = [];
    for (const [events, count] of Object.entries(READS)) {
      const order = Array.from({ length: count }, () => 1 + Math.floor(Math.random() * MIRRORS));
      // Warm both up on the same mirrors first, so neither pays for cold pages the other loaded.
      for (const [, reader] of readers) await measure(reader, Number(events), order.slice(0, 100));
      for (const [label, reader] of readers) {
        const { p50, p99 } = await measure(reader, Number(events), order);
        rows.push(`| ${label} | ${events} | ${count} | ${p50.toFixed(2)} ms | ${p99.toFixed(2)} ms |`);
      }
    }
    console.log('\n| reader | events | reads | p50 | p99 |\n|---|---|---|---|---|');
    console.log(rows.join('\n'));
    console.log('\nThe snapshot reader pays two round trips more (begin, commit) than the naive one for answers that cannot skew.');
  } finally {
    await pool.end();
    await admin(`drop database if exists ${name} with (force)`);
  }
}

const section: BenchSection = { name: 'reads', run };
export default section;
