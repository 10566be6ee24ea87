/**
 * The catalog dashboard (grafana/dashboards/mirrorstate-catalog.json): every SQL query of it, with
 * Grafana's variables and macros expanded as Grafana expands them (test/helpers/grafana.ts), run as
 * the read-only role docs/grafana.md creates, against a catalog whose history was written through
 * applyBatch, and checked for its result. The expected results are worked out here from the
 * history itself, not from SQL.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUSES } from '../../src/update.js';
import { createTestDatabase, databaseUrl, type TestDatabase } from '../helpers/db.js';
import { expandMacros, goFloat, grafanaSql, interpolateVariables, parseInterval, rfc3339Nano } from '../helpers/grafana.js';
import { migrateCatalog, perDayViolations, SCHEMA, write } from '../reads/support.js';

const ROOT = new URL('../../', import.meta.url);
interface Target { rawSql: string; format: string }
interface Panel { title: string; targets: Target[] }
const dashboard = JSON.parse(readFileSync(new URL('grafana/dashboards/mirrorstate-catalog.json', ROOT), 'utf8')) as { panels: Panel[] };
const sqlOf = (title: string) => {
  const panel = dashboard.panels.find((p) => p.title.startsWith(title));
  if (!panel?.targets[0]) throw new Error(`no panel ${title}`);
  return panel.targets[0].rawSql;
};

const HOSTILE = `o'brien "cdc" \\ $mirror <b>`;
/** [mirror, observedAt, status]: each a transition (every status differs from the one before). */
const HISTORY: [string, string, string][] = [
  ['alpha', '2026-11-08T10:00:00Z', 'setup'],
  ['alpha', '2026-11-09T00:00:00Z', 'running'],
  ['alpha', '2026-11-11T12:00:00.5Z', 'failed'],
  ['alpha', '2026-11-11T13:00:00Z', 'running'],
  ['alpha', '2026-11-16T06:00:00Z', 'paused'],
  ['alpha', '2026-11-18T00:00:00Z', 'running'],
  [HOSTILE, '2026-11-01T00:00:00Z', 'running'],
  [HOSTILE, '2026-11-12T00:00:00Z', 'failed'],
  [HOSTILE, '2026-11-12T00:30:00Z', 'running'],
  [HOSTILE, '2026-11-12T01:00:00Z', 'failed'],
  [HOSTILE, '2026-11-12T01:30:00.25Z', 'running'],
  ['gamma', '2026-11-15T00:00:00Z', 'running'],
  ['delta', '2026-11-02T00:00:00Z', 'running'],
];
const RANGE = { from: new Date('2026-11-10T00:00:00Z'), to: new Date('2026-11-17T00:00:00Z') };
const CHOSEN = ['alpha', HOSTILE, 'gamma', 'delta'];
const VARIABLES = { mirror: { value: CHOSEN, multi: true }, journal_mirror: { value: HOSTILE } };
const ROLE = `mirrorstate_grafana_${process.pid}`;

let db: TestDatabase;
let grafana: pg.Pool;

const ms = (iso: string) => Date.parse(iso);
const inRange = (iso: string) => ms(iso) >= RANGE.from.getTime() && ms(iso) <= RANGE.to.getTime();
const historyOf = (mirror: string) => HISTORY.filter(([m]) => m === mirror);

/**
 * The Flapping panel calls flapping() (migration 0013), which stops visiting mirrors once none left
 * can enter the list, and counts the whole range instead after too many visits. The known history
 * runs it as the panel does, with the fallback forced (no visits allowed), and with a list of two
 * (so the walk stops early): each must give the panel's rows, or their first two.
 */
const CALL = 'flapping($__timeFrom(), $__timeTo(), 20)';
function flappingVariants(sql: string): [string, string, number][] {
  expect(sql).toContain(CALL);
  return [
    ['as sent', sql, 20],
    ['counting the range', sql.replace(CALL, 'flapping($__timeFrom(), $__timeTo(), 20, 0)'), 20],
    ['stopping early', sql.replace(CALL, 'flapping($__timeFrom(), $__timeTo(), 2)'), 2],
  ];
}

async function run(title: string) {
  const { rows } = await grafana.query(grafanaSql(sqlOf(title), VARIABLES, RANGE));
  return rows;
}

beforeAll(async () => {
  db = await createTestDatabase('grafana_catalog');
  await migrateCatalog(db.pool);
  // Out of order and twice: the catalog keeps each transition once, in version order. The first
  // batch stops within a day, so the next adds to that day's count (on the same connection, to its row).
  const updates = HISTORY.map(([mirror, observedAt, status]) => ({ mirror, observedAt, status, rowsSynced: ms(observedAt) % 1000 }));
  await write(db.pool, updates.slice(0, 9));
  await write(db.pool, [...updates].reverse());
  await write(db.pool, updates);
  // The role exactly as docs/grafana.md creates it, but named for this run (roles are server-wide).
  const docs = readFileSync(new URL('docs/grafana.md', ROOT), 'utf8');
  const grants = /```sql\n([\s\S]*?)```/.exec(docs)?.[1] ?? '';
  expect(grants).toContain('grant select');
  await db.pool.query(`drop role if exists ${ROLE}`);
  await db.pool.query(grants.replaceAll('mirrorstate_grafana', ROLE).replaceAll('database mirrorstate ', `database ${db.name} `));
  const url = new URL(databaseUrl(db.name));
  url.username = ROLE;
  url.password = 'change-me';
  grafana = new pg.Pool({ connectionString: url.toString(), max: 2 });
}, 60_000);

afterAll(async () => {
  await grafana?.end();
  await db?.drop();
  const admin = new pg.Client({ connectionString: databaseUrl('postgres') });
  await admin.connect();
  await admin.query(`drop role if exists ${ROLE}`).finally(() => admin.end());
});

describe('Grafana macro expansion, as macros.go and sqleng write it', () => {
  it.each([
    ['$__timeFilter(at)', `at BETWEEN '2026-11-10T00:00:00Z' AND '2026-11-17T00:00:00Z'`],
    ['$__timeFrom() / $__timeTo()', `'2026-11-10T00:00:00Z' / '2026-11-17T00:00:00Z'`],
    ['$__timeGroupAlias(at, \'1d\')', `floor(extract(epoch from at)/86400)*86400 AS "time"`],
    ['$__timeGroup(at, 1h), 1', `floor(extract(epoch from at)/3600)*3600 AS "time", 1`],
    ['$__timeGroup(at, 30d)', `floor(extract(epoch from at)/2.592e+06)*2.592e+06`],
    ['$__time(at)', `at AS "time"`],
    ['$__unixEpochFilter(t)', 't >= 1794268800 AND t <= 1794873600'],
    ['$__interval_ms $__interval', '60000 1m'],
  ])('%s', (sql, expanded) => {
    expect(expandMacros(sql, RANGE)).toBe(expanded);
  });

  it('writes times and numbers as Go does', () => {
    expect(rfc3339Nano(new Date('2026-11-10T00:00:00.120Z'))).toBe('2026-11-10T00:00:00.12Z');
    expect([goFloat(86_400), goFloat(604_800), goFloat(1e6), goFloat(0.5), goFloat(1.5e-5)]).toEqual(['86400', '604800', '1e+06', '0.5', '1.5e-05']);
    expect(parseInterval('1h30m')).toBe(5_400_000);
    expect(() => expandMacros('$__nope(x)', RANGE)).toThrow('unknown macro');
  });

  it('quotes a multi-value variable per value and escapes a single one, as the SQL data source does', () => {
    expect(interpolateVariables('array[$mirror] = \'${journal_mirror}\'', { mirror: { value: ["a'b", 'c'], multi: true }, journal_mirror: { value: "d'e" } }))
      .toBe(`array['a''b','c'] = 'd''e'`);
  });
});

describe('the catalog dashboard on a known history, as the read-only role', () => {
  it('the role reads and cannot write', async () => {
    await expect(grafana.query(`insert into transitions (mirror, to_status, at, seq) values ('x', 'running', now(), 0)`))
      .rejects.toMatchObject({ code: expect.stringMatching(/^(25006|42501)$/) });
    await expect(grafana.query('select count(*) from pgboss.job')).rejects.toMatchObject({ code: expect.stringMatching(/^(42501|42P01|3F000)$/) });
  });

  it('state timeline: each chosen mirror\'s status at the start, then every transition in the range', async () => {
    const rows = await run('Status of the chosen mirrors');
    const want = CHOSEN.flatMap((mirror) => {
      const history = historyOf(mirror);
      const before = history.filter(([, at]) => ms(at) < RANGE.from.getTime()).at(-1);
      return [
        ...(before ? [[RANGE.from.getTime(), mirror, before[2]] as const] : []),
        ...history.filter(([, at]) => inRange(at)).map(([, at, status]) => [ms(at), mirror, status] as const),
      ];
    }).sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    expect(rows.map((r) => [(r.time as Date).getTime(), r.metric, STATUSES[r.status as number]])).toEqual(want);
    expect(rows.filter((r) => r.metric === HOSTILE)).toHaveLength(5);
  });

  it('transitions per day across the fleet', async () => {
    const rows = await run('Transitions per day');
    const perDay = new Map<number, number>();
    for (const [, at] of HISTORY.filter(([, at]) => inRange(at))) {
      const day = Math.floor(ms(at) / 86_400_000) * 86_400;
      perDay.set(day, (perDay.get(day) ?? 0) + 1);
    }
    expect(rows.map((r) => [Number(r.time), Number(r.transitions)])).toEqual([...perDay].sort((a, b) => a[0] - b[0]));
    expect(perDay.get(ms('2026-11-12T00:00:00Z') / 1000)).toBe(4);
  });

  it.each(flappingVariants(sqlOf('Flapping')))('flapping: the mirrors with the most transitions in the range (%s)', async (_how, sql, limit) => {
    const { rows } = await grafana.query(grafanaSql(sql, VARIABLES, RANGE));
    expect(rows.map((r) => [r.mirror, Number(r.transitions), (r.first as Date).toISOString(), (r.last as Date).toISOString()])).toEqual([
      [HOSTILE, 4, '2026-11-12T00:00:00.000Z', '2026-11-12T01:30:00.250Z'],
      ['alpha', 3, '2026-11-11T12:00:00.500Z', '2026-11-16T06:00:00.000Z'],
      ['gamma', 1, '2026-11-15T00:00:00.000Z', '2026-11-15T00:00:00.000Z'],
    ].slice(0, limit));
  });

  // Ranges that cut days: the fleet-wide panels read whole days from the per-day tables and the cut
  // days from transitions, so a range starting after a transition of its first day (alpha's failure
  // at 12:00:00.5), ending exactly on one (inclusive, as $__timeFilter is), or within one day must
  // still count exactly the transitions in it.
  it.each([
    ['cutting its first and last day', new Date('2026-11-11T12:30:00Z'), new Date('2026-11-16T06:00:00Z')],
    ['within one day', new Date('2026-11-12T00:15:00Z'), new Date('2026-11-12T01:15:00Z')],
    ['over the whole history', new Date('2026-10-01T00:00:00Z'), new Date('2026-12-01T00:00:00Z')],
    ['after the history', new Date('2026-11-20T00:00:00Z'), new Date('2026-11-27T12:00:00Z')],
  ])('transitions per day and flapping over a range %s', async (_what, from, to) => {
    const range = { from, to };
    const within = HISTORY.filter(([, at]) => ms(at) >= from.getTime() && ms(at) <= to.getTime());
    const perDay = new Map<number, number>();
    for (const [, at] of within) {
      const day = Math.floor(ms(at) / 86_400_000) * 86_400;
      perDay.set(day, (perDay.get(day) ?? 0) + 1);
    }
    const days = await grafana.query(grafanaSql(sqlOf('Transitions per day'), VARIABLES, range));
    expect(days.rows.map((r) => [Number(r.time), Number(r.transitions)])).toEqual([...perDay].sort((a, b) => a[0] - b[0]));
    const byMirror = new Map<string, string[]>();
    for (const [mirror, at] of within) byMirror.set(mirror, [...(byMirror.get(mirror) ?? []), at]);
    const want = [...byMirror].map(([mirror, ats]) => [mirror, ats.length, new Date(ats[0]!).toISOString(), new Date(ats.at(-1)!).toISOString()])
      .sort((a, b) => (b[1] as number) - (a[1] as number) || (a[0]! < b[0]! ? -1 : 1));
    for (const [how, sql, limit] of flappingVariants(sqlOf('Flapping'))) {
      const flapping = await grafana.query(grafanaSql(sql, VARIABLES, range));
      expect(flapping.rows.map((r) => [r.mirror, Number(r.transitions), (r.first as Date).toISOString(), (r.last as Date).toISOString()]), how).toEqual(want.slice(0, limit));
    }
  });

  it('the per-day counts are exactly the transitions of each day', async () => {
    expect(await perDayViolations(db.pool)).toEqual([]);
    const { rows: [counts] } = await db.pool.query(`select count(distinct day)::int as days, sum(transitions)::int as n from ${SCHEMA}.transitions_per_day`);
    expect(counts).toEqual({ days: new Set(HISTORY.map(([, at]) => at.slice(0, 10))).size, n: HISTORY.length });
  });

  it('time per status of the chosen mirrors, within the range', async () => {
    const rows = await run('Time per status');
    const want = new Map<string, number>();
    for (const mirror of CHOSEN) {
      const history = historyOf(mirror);
      for (const [i, [, at, status]] of history.entries()) {
        const since = Math.max(ms(at), RANGE.from.getTime());
        const until = Math.min(history[i + 1] ? ms(history[i + 1]![1]) : Infinity, RANGE.to.getTime());
        if (until > since) want.set(`${mirror} ${status}`, (want.get(`${mirror} ${status}`) ?? 0) + (until - since) / 1000);
      }
    }
    const got = new Map(rows.map((r) => [`${r.mirror} ${r.status}`, r.seconds as number]));
    expect(got).toEqual(want);
    expect(got.get(`${HOSTILE} failed`)).toBe(3600.25);
    expect([...want.keys()].filter((k) => k.startsWith('delta'))).toEqual(['delta running']);
  });

  it('the journal: the newest updates of one mirror in the range, as received', async () => {
    const rows = await run('Journal');
    const want = historyOf(HOSTILE).filter(([, at]) => inRange(at)).reverse();
    expect(rows.map((r) => [(r.time as Date).getTime(), r.status, r.applied, JSON.parse(r.payload as string).mirror]))
      .toEqual(want.map(([, at, status]) => [ms(at), status, true, HOSTILE]));
  });

  it('every panel has been run above', () => {
    expect(flappingVariants(sqlOf('Flapping')).map(([how]) => how)).toEqual(['as sent', 'counting the range', 'stopping early']);
    expect(dashboard.panels.map((p) => p.title.split(/[ :]/)[0])).toEqual(['Status', 'Transitions', 'Flapping', 'Time', 'Journal']);
  });
});
