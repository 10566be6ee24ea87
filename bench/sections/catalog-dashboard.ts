/**
 * `npm run bench catalog-dashboard`: every query of the catalog dashboard for Grafana
 * (grafana/dashboards/mirrorstate-catalog.json) on a catalog of 100,000 mirrors and 10 million
 * transitions, with Grafana's variables and macros expanded as Grafana expands them
 * (test/helpers/grafana.ts), over time ranges from a day to the whole history. For each: its plan
 * (EXPLAIN ANALYZE, printed for the dashboard's default range), its time, and a check that no plan
 * reads `transitions` with a sequential scan (the section fails if one does). The one exception is a
 * fleet-wide panel over a range that holds the whole history (the last 90 days here): it must count
 * every row, and a sequential scan is then the cheapest way to; the table shows it, marked.
 *
 * The catalog is made with SQL in a bench database of its own, dropped at the end:
 * - transitions: generate_series(1, 10,000,000), each row one of the 100,000 mirrors (a fixed
 *   permutation, g * 7919 mod 100,000, so every mirror gets 100), one of the 12 statuses, and a time
 *   spread evenly over the last 90 days; a hundred "flapping" mirrors get 1,000 more each in the
 *   last day. Inserted in chunks of a million with the migration's secondary indexes dropped, then
 *   the indexes are created again from their own definitions (pg_indexes), as the migration made them.
 * - mirrors: one row each; journal: 5 updates per mirror in the last week.
 * Then VACUUM ANALYZE, as autovacuum would have done on a catalog this old (it also sets the
 * visibility map that index-only scans use).
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import { grafanaSql } from '../../test/helpers/grafana.js';
import type { BenchSection } from '../index.js';
import { ms } from '../lib.js';

const SCHEMA = 'mirrorstate';
const MIRRORS = 100_000;
const TRANSITIONS = 10_000_000;
const CHUNK = 1_000_000;
const FLAPPING = 100;
const FLAPS_EACH = 1_000;
const DAY_MS = 86_400_000;
const RANGES: [string, number][] = [['last 24 h', 1], ['last 7 days (default)', 7], ['last 30 days', 30], ['last 90 days (all)', 90]];
/** Days of history the catalog holds: a range this long is the whole table. */
const HISTORY_DAYS = 90;
/** Panels that read across the fleet, not a few chosen mirrors. */
const FLEET_WIDE = /^(Transitions per day|Flapping)/;
const RUNS = 3;

const dashboard = JSON.parse(readFileSync(new URL('../../grafana/dashboards/mirrorstate-catalog.json', import.meta.url), 'utf8')) as
  { panels: { title: string; targets: { rawSql: string }[] }[] };
const name = (i: number) => `mirror_${String(i).padStart(6, '0')}`;

async function fill(pool: pg.Pool): Promise<void> {
  const t = `${SCHEMA}.transitions`;
  const started = performance.now();
  const say = (text: string) => process.stderr.write(`\r  ${text} (${((performance.now() - started) / 1000).toFixed(0)} s)\x1b[K`);
  await pool.query(
    `insert into ${SCHEMA}.mirrors (mirror, status, status_since, observed_at, seq, transitions_total, journal_length, journal_oldest_at)
     select 'mirror_' || lpad(i::text, 6, '0'), 'running', now() - interval '1 day', now(), 0, 100, 5, now() - interval '5 days'
       from generate_series(1, $1::int) as i`, [MIRRORS]);
  say('mirrors: 100,000');
  const { rows: indexes } = await pool.query<{ indexname: string; indexdef: string }>(
    `select indexname, indexdef from pg_indexes where schemaname = $1 and tablename = 'transitions' and indexname <> 'transitions_pkey'`, [SCHEMA]);
  for (const index of indexes) await pool.query(`drop index ${SCHEMA}.${index.indexname}`);
  for (let from = 1; from <= TRANSITIONS; from += CHUNK) {
    const to = Math.min(TRANSITIONS, from + CHUNK - 1);
    await pool.query(
      `insert into ${t} (mirror, from_status, to_status, at, seq)
       select 'mirror_' || lpad((1 + (g::bigint * 7919) % $3::int)::text, 6, '0'), null,
              (array['unknown','running','paused','pausing','setup','snapshot','terminating','terminated','completed','resync','failed','modifying'])[1 + g % 12],
              now() - interval '90 days' * ((g::float8 * 0.6180339887) - floor(g::float8 * 0.6180339887)), 0
         from generate_series($1::int, $2::int) as g`, [from, to, MIRRORS]);
    say(`transitions: ${to.toLocaleString('en')} / ${TRANSITIONS.toLocaleString('en')}`);
  }
  await pool.query(
    `insert into ${t} (mirror, from_status, to_status, at, seq)
     select 'mirror_' || lpad((f * 997 % $1::int + 1)::text, 6, '0'), null, case when k % 2 = 0 then 'failed' else 'running' end,
            now() - interval '1 day' * (k::float8 / $3::int), 0
       from generate_series(1, $2::int) as f cross join generate_series(1, $3::int) as k`, [MIRRORS, FLAPPING, FLAPS_EACH]);
  say(`transitions: ${(TRANSITIONS + FLAPPING * FLAPS_EACH).toLocaleString('en')}, flapping mirrors included`);
  for (const [i, index] of indexes.entries()) {
    say(`creating index ${i + 1} of ${indexes.length}: ${index.indexname}`);
    await pool.query(index.indexdef);
  }
  say('journal: 5 updates per mirror');
  await pool.query(
    `insert into ${SCHEMA}.journal (mirror, observed_at, seq, status, applied, payload)
     select 'mirror_' || lpad(i::text, 6, '0'), now() - interval '1 day' * j, 0, 'running', true,
            jsonb_build_object('mirror', 'mirror_' || lpad(i::text, 6, '0'), 'status', 'running', 'rowsSynced', j * 100)
       from generate_series(1, $1::int) as i cross join generate_series(1, 5) as j`, [MIRRORS]);
  say('vacuum analyze');
  await pool.query(`vacuum analyze ${SCHEMA}.mirrors, ${SCHEMA}.transitions, ${SCHEMA}.journal`);
  say('catalog ready');
  process.stderr.write('\n');
}

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; Plans?: PlanNode[] }

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

async function run(): Promise<void> {
  const database = `ms_bench_dashboard_${process.pid}`;
  await admin(`create database ${database}`);
  const pool = new pg.Pool({ connectionString: databaseUrl(database), max: 2 });
  const failures: string[] = [];
  try {
    await migrate(pool, SCHEMA, createLogger('silent'));
    await fill(pool);
    await pool.query(`alter database ${database} set search_path = ${SCHEMA}`);
    await pool.end();
    const reader = new pg.Pool({ connectionString: databaseUrl(database), max: 1 });
    try {
      const flapping = name(997 % MIRRORS + 1);
      const variables = { mirror: { value: [flapping, name(1), name(50_000), name(99_999), name(12_345)], multi: true }, journal_mirror: { value: name(42) } };
      const rows: string[] = [];
      for (const [label, days] of RANGES) {
        const now = Date.now();
        const range = { from: new Date(now - days * DAY_MS), to: new Date(now) };
        for (const panel of dashboard.panels) {
          const sql = grafanaSql(panel.targets[0]?.rawSql ?? '', variables, range);
          const [{ 'QUERY PLAN': [explained] }] = (await reader.query(`explain (analyze, format json) ${sql}`)).rows as [{ 'QUERY PLAN': [{ Plan: PlanNode }] }];
          const planNodes = nodes(explained.Plan);
          const seq = planNodes.filter((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'transitions');
          const whole = days >= HISTORY_DAYS && FLEET_WIDE.test(panel.title);
          if (seq.length > 0 && !whole) failures.push(`${panel.title}, ${label}: Seq Scan on transitions`);
          const times: number[] = [];
          let count = 0;
          for (let i = 0; i < RUNS; i++) {
            const started = performance.now();
            count = (await reader.query(sql)).rows.length;
            times.push(performance.now() - started);
          }
          times.sort((a, b) => a - b);
          const scans = [...new Set(planNodes.filter((n) => n['Relation Name'] || n['Index Name'])
            .map((n) => `${n['Node Type']} ${n['Index Name'] ?? n['Relation Name']}`))].join('; ');
          rows.push(`| ${panel.title} | ${label} | ${count.toLocaleString('en')} | ${ms(times[1] ?? NaN)} | ${seq.length ? (whole ? 'yes (whole history)' : '**yes**') : 'no'} | ${scans} |`);
          if (days === 7) {
            const text = (await reader.query(`explain (analyze, costs off, timing off, summary off) ${sql}`)).rows.map((r) => `    ${r['QUERY PLAN']}`).join('\n');
            console.log(`\n${panel.title} (last 7 days):\n${text}`);
          }
          process.stderr.write(`  measured: ${panel.title}, ${label}\n`);
        }
      }
      console.log(`\n${MIRRORS.toLocaleString('en')} mirrors, ${(TRANSITIONS + FLAPPING * FLAPS_EACH).toLocaleString('en')} transitions; time is the median of ${RUNS} runs of the query as Grafana sends it.\n`);
      console.log('| panel | range | rows | time | Seq Scan on transitions | scans |\n|---|---|---|---|---|---|');
      console.log(rows.join('\n'));
    } finally {
      await reader.end();
    }
  } finally {
    await pool.end().catch(() => undefined);
    await admin(`drop database if exists ${database} with (force)`);
  }
  if (failures.length > 0) throw new Error(`sequential scans of transitions:\n${failures.join('\n')}`);
  console.log('\nNo plan reads transitions with a sequential scan, but for a fleet-wide panel over the whole history.');
}

const section: BenchSection = { name: 'catalog-dashboard', run };
export default section;
