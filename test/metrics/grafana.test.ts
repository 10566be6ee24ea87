/**
 * The shipped dashboards and alert rules: promtool accepts and unit-tests the rules, every PromQL
 * expression parses and names only families the daemon serves, and the dashboard shows every family
 * (docs/metrics.md documenting each is checked in test/docs/reference.test.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FAMILIES } from '../helpers/families.js';
import { promtool as runPromtool } from '../helpers/prometheus.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ALERTS = path.join(ROOT, 'grafana/alerts');
const tmp = mkdtempSync(path.join(tmpdir(), 'mirrorstate-grafana-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];
const SERIES_NAMES = new Set(FAMILIES.flatMap((f) => [f, ...HISTOGRAM_SUFFIXES.map((s) => f + s)]));

const promtool = (...args: string[]) => runPromtool(args, { cwd: ALERTS });

function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\b(?:peerdb|mirrorstate)_[a-z_]+/g)].map((m) => m[0]);
}

interface Panel {
  title: string;
  targets?: { expr: string }[];
}
const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'grafana/dashboards/mirrorstate.json'), 'utf8')) as { uid: string; panels: Panel[] };
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
const rulesText = readFileSync(path.join(ALERTS, 'mirrorstate.rules.yml'), 'utf8');

describe('alert rules', () => {
  it('pass promtool check rules', () => {
    const r = promtool('check', 'rules', 'mirrorstate.rules.yml');
    expect(r.output).toContain('SUCCESS: 12 rules found');
    expect(r.code).toBe(0);
  });

  it('pass their promtool unit tests', () => {
    const r = promtool('test', 'rules', 'mirrorstate.rules.test.yml');
    expect(r.output).toContain('SUCCESS');
    expect(r.code, r.output).toBe(0);
  });

  it('name only families the daemon serves', () => {
    const unknown = namesIn(rulesText).filter((n) => !SERIES_NAMES.has(n));
    expect(unknown).toEqual([]);
  });
});

describe('dashboard', () => {
  it('has PromQL that promtool parses', () => {
    // Grafana's variables replaced by what they expand to, each expression a recording rule.
    const rules = dashboardExprs.map((expr, i) => ({
      record: `dashboard:expr_${i}`,
      expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', '.+'),
    }));
    const file = path.join(tmp, 'dashboard.rules.json');
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = promtool('check', 'rules', file);
    expect(r.code, r.output).toBe(0);
    expect(rules.length).toBeGreaterThan(15);
  });

  it('names only families the daemon serves, and shows every one of them', () => {
    const used = new Set(dashboardExprs.flatMap(namesIn));
    expect([...used].filter((n) => !SERIES_NAMES.has(n))).toEqual([]);
    const shown = FAMILIES.filter((f) => [...used].some((n) => n === f || HISTOGRAM_SUFFIXES.some((s) => n === f + s)));
    expect(shown.sort()).toEqual([...FAMILIES].sort());
  });
});
