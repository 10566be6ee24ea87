/**
 * `npm run bench catalog-dashboard`: every query of the catalog dashboard for Grafana
 * (grafana/dashboards/mirrorstate-catalog.json) on a catalog of 100,000 mirrors and 10 million
 * transitions, with Grafana's variables and macros expanded as Grafana expands them
 * (test/helpers/grafana.ts), over time ranges from a day to the whole history. For each: its plan
 * (auto_explain's, with those of the statements a function runs; the query's own printed for the
 * dashboard's default range), its time, and a check that no plan reads `transitions` with a
 * sequential scan (the section fails if one does; a node the executor never ran does not count).
 *
 * BENCH_BASELINE_DASHBOARD=<a dashboard JSON> (say the previous build's, from `git show`) runs that
 * dashboard's queries on the same catalog in the same run, each row marked "before": the side by
 * side comparison. Its plans may scan (a fleet-wide panel over the whole history did, before the
 * per-day tables); they are shown, not failed. BENCH_DASHBOARD_MIRRORS and
 * BENCH_DASHBOARD_TRANSITIONS make a smaller catalog for a quick try (default 100,000 and 10,000,000).
 *
 * The catalog is made with SQL in a bench database of its own, dropped at the end:
 * - the schema as the build before migration 0013 left it (no per-day tables);
 * - transitions: generate_series(1, 10,000,000), each row one of the 100,000 mirrors (a fixed
 *   permutation, g * 7919 mod 100,000, so every mirror gets 100), one of the 12 statuses, and a time
 *   spread evenly over the last 90 days; a hundred "flapping" mirrors get 1,000 more each in the
 *   last day. Inserted in chunks of a million with the migration's secondary indexes dropped, then
 *   the indexes are created again from their own definitions (pg_indexes), as the migration made them.
 * - mirrors: one row each, transitions_total their count; journal: 5 updates per mirror in the last week.
 * Then VACUUM ANALYZE, as autovacuum would have done on a catalog this old (it also sets the
 * visibility map that index-only scans use), then the remaining migrations, 0013's backfill
 * included (its time is printed), and VACUUM ANALYZE of the new table.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { migrate } from '../../src/catalog/migrate.js';
import { migrateBefore } from '../../test/helpers/previousCatalog.js';
import { createLogger } from '../../src/log.js';
import { admin, databaseUrl } from '../../test/helpers/db.js';
import { grafanaSql } from '../../test/helpers/grafana.js';
import type { BenchSection } from '../index.js';
import { ms } from '../lib.js';

const SCHEMA = 'mirrorstate';
const MIRRORS = Number(process.env.BENCH_DASHBOARD_MIRRORS ?? 100_000);
const TRANSITIONS = Number(process.env.BENCH_DASHBOARD_TRANSITIONS ?? 10_000_000);
const CHUNK = 1_000_000;
const FLAPPING = Math.min(100, MIRRORS);
const FLAPS_EACH = 1_000;
const DAY_MS = 86_400_000;
const RANGES: [string, number][] = [['last 24 h', 1], ['last 7 days (default)', 7], ['last 30 days', 30], ['last 90 days (all)', 90]];
const RUNS = 3;

type Dashboard = { panels: { title: string; targets: { rawSql: string }[] }[] };
const dashboard = JSON.parse(readFileSync(new URL('../../grafana/dashboards/mirrorstate-catalog.json', import.meta.url), 'utf8')) as Dashboard;
const baselineFile = process.env.BENCH_BASELINE_DASHBOARD;
const baseline = baselineFile ? (JSON.parse(readFileSync(baselineFile, 'utf8')) as Dashboard) : undefined;
const name = (i: number) => `mirror_${String(i).padStart(6, '0')}`;

async function fill(pool: pg.Pool): Promise<void> {
  const t = `${SCHEMA}.transitions`;
  const started = performance.now();
  const say = (text: string) => process.stderr.write(`\r  ${text} (${((performance.now() - started) / 1000).toFixed(0)} s)\x1b[K`);
  await pool.query(
    `insert into ${SCHEMA}.mirrors (mirror, status, status_since, observed_at, seq, transitions_total, journal_length, journal_oldest_at)
     select 'mirror_' || lpad(i::text, 6, '0'), 'running', now() - interval '1 day', now(), 0, 0, 5, now() - interval '5 days'
       from generate_series(1, $1::int) as i`, [MIRRORS]);
  say(`mirrors: ${MIRRORS.toLocaleString('en')}`);
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
  say('transitions_total of each mirror');
  await pool.query(
    `update ${SCHEMA}.mirrors m set transitions_total = c.n
       from (select mirror, count(*) as n from ${t} group by mirror) as c where c.mirror = m.mirror`);
  say('journal: 5 updates per mirror');
  await pool.query(
    `insert into ${SCHEMA}.journal (mirror, observed_at, seq, status, applied, payload)
     select 'mirror_' || lpad(i::text, 6, '0'), now() - interval '1 day' * j, 0, 'running', true,
            jsonb_build_object('mirror', 'mirror_' || lpad(i::text, 6, '0'), 'status', 'running', 'rowsSynced', j * 100)
       from generate_series(1, $1::int) as i cross join generate_series(1, 5) as j`, [MIRRORS]);
  say('vacuum analyze');
  await pool.query(`vacuum analyze ${SCHEMA}.mirrors, ${SCHEMA}.transitions, ${SCHEMA}.journal`);
  say('catalog as the previous build left it');
  process.stderr.write('\n');
}

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; 'Actual Loops'?: number; Plans?: PlanNode[] }

/** The plan's nodes that ran: a branch behind a one-time filter that was false is planned, never executed. */
function nodes(plan: PlanNode): PlanNode[] {
  if (plan['Actual Loops'] === 0) return [];
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

async function run(): Promise<void> {
  const database = `ms_bench_dashboard_${process.pid}`;
  await admin(`create database ${database}`);
  const pool = new pg.Pool({ connectionString: databaseUrl(database), max: 2 });
  const failures: string[] = [];
  try {
    await migrateBefore(pool, SCHEMA, 13);
    await fill(pool);
    const migrating = performance.now();
    await migrate(pool, SCHEMA, createLogger('info'));
    const { rows: [sizes] } = await pool.query(`select count(*)::int as days from ${SCHEMA}.transitions_per_day`);
    console.log(`Migration 0013 (the per-day counts of ${(TRANSITIONS + FLAPPING * FLAPS_EACH).toLocaleString('en')} transitions): ${ms(performance.now() - migrating)}; ${sizes.days} rows.`);
    await pool.query(`vacuum analyze ${SCHEMA}.transitions_per_day`);
    await pool.query(`alter database ${database} set search_path = ${SCHEMA}`);
    await pool.end();
    const reader = new pg.Pool({ connectionString: databaseUrl(database), max: 1 });
    // Plans come from auto_explain, sent back as notices: those of statements inside a function
    // (flapping()) too, which EXPLAIN of the call does not show.
    const explainer = new pg.Client({ connectionString: databaseUrl(database) });
    await explainer.connect();
    let plans: PlanNode[] = [];
    explainer.on('notice', (notice: { message?: string }) => {
      const text = notice.message ?? '';
      if (text.includes('plan:')) plans.push((JSON.parse(text.slice(text.indexOf('{'))) as { Plan: PlanNode }).Plan);
    });
    for (const setting of ["load 'auto_explain'", 'set auto_explain.log_min_duration = 0', 'set auto_explain.log_analyze = on',
      'set auto_explain.log_nested_statements = on', "set auto_explain.log_format = 'json'", "set auto_explain.log_level = 'notice'"]) {
      await explainer.query(setting);
    }
    try {
      const flapping = name(997 % MIRRORS + 1);
      const variables = { mirror: { value: [flapping, name(1), name(50_000), name(99_999), name(12_345)], multi: true }, journal_mirror: { value: name(42) } };
      const rows: string[] = [];
      // flapping()'s worst case: asked for 200, past the 100 mirrors that flap, it finds no early stop
      // among mirrors that all change alike, visits 500 and then counts the range.
      const flappingPanel = dashboard.panels.find((p) => p.title.startsWith('Flapping'))!;
      const worst: Dashboard = { panels: [{ ...flappingPanel, targets: [{ rawSql: flappingPanel.targets[0]!.rawSql.replace(', 20)', ', 200)') }] }] };
      const runs: [string, Dashboard][] = [
        ['', dashboard], [' (top 200: 500 visits, then the count)', worst], ...(baseline ? [[' (before)', baseline] as [string, Dashboard]] : []),
      ];
      for (const [label, days] of RANGES) {
        const now = Date.now();
        const range = { from: new Date(now - days * DAY_MS), to: new Date(now) };
        for (const [which, board] of runs) for (const panel of board.panels) {
          // Before: only the panels whose query changed.
          if (board === baseline && dashboard.panels.find((q) => q.title === panel.title)?.targets[0]?.rawSql === panel.targets[0]?.rawSql) continue;
          const sql = grafanaSql(panel.targets[0]?.rawSql ?? '', variables, range);
          plans = [];
          await explainer.query(sql);
          const planNodes = plans.flatMap(nodes);
          const seq = planNodes.filter((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'transitions');
          if (seq.length > 0 && board !== baseline) failures.push(`${panel.title}, ${label}: Seq Scan on transitions`);
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
          rows.push(`| ${panel.title}${which} | ${label} | ${count.toLocaleString('en')} | ${ms(times[1] ?? NaN)} | ${seq.length ? '**yes**' : 'no'} | ${scans} |`);
          if (days === 7 && !which) {
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
      await explainer.end();
    }
  } finally {
    await pool.end().catch(() => undefined);
    await admin(`drop database if exists ${database} with (force)`);
  }
  if (failures.length > 0) throw new Error(`sequential scans of transitions:\n${failures.join('\n')}`);
  console.log('\nNo plan of the dashboard reads transitions with a sequential scan.');
}

const section: BenchSection = { name: 'catalog-dashboard', run };
export default section;
