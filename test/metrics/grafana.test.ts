/**
 * The shipped dashboards and alert rules: promtool accepts and unit-tests the rules, every alert
 * has a case that fires and one that does not, a runbook section and the configured job selector
 * on every series; every PromQL expression parses and names only families the daemon serves, and
 * the dashboard shows every family (docs/metrics.md documenting each is checked in
 * test/docs/reference.test.ts). The generated files equal what `npm run generate` makes of
 * grafana/config.yml.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ALERT_GROUPS } from '../../grafana/alerts/alerts.js';
import * as generators from '../../scripts/generate.js';
import { CONFIG_FILE, generatedFiles, parseConfig, PROMETHEUS_RULE_FILE, RULES_FILE } from '../../scripts/generate.js';
import { TABLE_FAMILY_NAMES } from '../../src/metrics/families.js';
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
  type: string;
  title: string;
  targets?: { expr: string }[];
}
const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'grafana/dashboards/mirrorstate.json'), 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; query?: { query: string } }[] };
};
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
const rulesText = readFileSync(path.join(ALERTS, 'mirrorstate.rules.yml'), 'utf8');
const config = parseConfig(readFileSync(path.join(ROOT, CONFIG_FILE), 'utf8'));
const ALERT_NAMES = ALERT_GROUPS.flatMap((g) => g.alerts.map((a) => a.alert));

interface Rule {
  alert: string;
  expr: string;
  annotations: Record<string, string>;
}
const ruleGroups = (parse(rulesText) as { groups: { rules: Rule[] }[] }).groups;
const rules = ruleGroups.flatMap((g) => g.rules);

describe('alert rules', () => {
  it('pass promtool check rules', () => {
    const r = promtool('check', 'rules', 'mirrorstate.rules.yml');
    expect(r.output).toContain(`SUCCESS: ${ALERT_NAMES.length} rules found`);
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

  it('select every series with the configured selector', () => {
    expect(rules.map((r) => r.alert)).toEqual(ALERT_NAMES);
    for (const rule of rules) {
      const series = [...rule.expr.matchAll(/\b((?:peerdb|mirrorstate)_[a-z_]+|up)\b(\{[^}]*\})?/g)];
      expect(series.length, rule.alert).toBeGreaterThan(0);
      for (const [whole, , matchers] of series) expect(matchers ?? '', `${rule.alert}: ${whole}`).toMatch(new RegExp(`^\\{${config.selector}[,}]`));
    }
  });

  it('each point at their runbook section in docs/operating.md', () => {
    const operating = readFileSync(path.join(ROOT, 'docs/operating.md'), 'utf8');
    for (const rule of rules) {
      expect(rule.annotations.runbook_url, rule.alert).toBe(`${config.runbookUrl}#${rule.alert.toLowerCase()}`);
      expect(operating, `docs/operating.md has no "### ${rule.alert}" section`).toMatch(new RegExp(`^### ${rule.alert}$`, 'm'));
    }
  });

  it('each have a promtool case where they fire and one where they do not', () => {
    const tests = (parse(readFileSync(path.join(ALERTS, 'mirrorstate.rules.test.yml'), 'utf8')) as {
      tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
    }).tests.flatMap((t) => t.alert_rule_test);
    const firing = new Set(tests.filter((t) => t.exp_alerts.length > 0).map((t) => t.alertname));
    const quiet = new Set(tests.filter((t) => t.exp_alerts.length === 0).map((t) => t.alertname));
    expect(ALERT_NAMES.filter((a) => !firing.has(a)), 'no firing case').toEqual([]);
    expect(ALERT_NAMES.filter((a) => !quiet.has(a)), 'no quiet case').toEqual([]);
  });
});

describe('generated files', () => {
  it.each([...generatedFiles().entries()])('%s is what npm run generate makes of grafana/config.yml', (file, text) => {
    expect(readFileSync(path.join(ROOT, file), 'utf8'), `${file} differs: edit ${CONFIG_FILE} or grafana/alerts/alerts.ts and run npm run generate`).toBe(text);
  });

  it("the PrometheusRule's groups are the rule file's", () => {
    const resource = parse(readFileSync(path.join(ROOT, PROMETHEUS_RULE_FILE), 'utf8')) as { spec: { groups: unknown } };
    expect(resource.spec.groups).toEqual(parse(readFileSync(path.join(ROOT, RULES_FILE), 'utf8')).groups);
  });

  it('follow the config: another selector and threshold reach every rule and the dashboard', () => {
    const text = readFileSync(path.join(ROOT, CONFIG_FILE), 'utf8')
      .replace('selector: job="mirrorstate"', 'selector: job="ms",namespace="cdc"')
      .replace(/(MirrorLagHigh:\n {4}for: 10m\n {4}lag: )5m/, '$115m');
    const other = parseConfig(text);
    const { rulesFile, dashboardFile } = generators;
    const rendered = rulesFile(other);
    expect(rendered).not.toContain('job="mirrorstate"');
    expect(rendered).toContain('peerdb_mirror_lag_seconds{job="ms",namespace="cdc"} > 900');
    expect(rendered).toContain('absent(up{job="ms",namespace="cdc"})');
    expect(dashboardFile(other, readFileSync(path.join(ROOT, 'grafana/dashboards/mirrorstate.json'), 'utf8'))).toContain(
      'label_values(mirrorstate_catalog_up{job=\\"ms\\",namespace=\\"cdc\\"}, job)',
    );
  });

  it.each([
    ['an alert without its entry', (t: string) => t.replace(/ {2}MirrorFailed:\n {4}for: 5m\n/, ''), /alerts.MirrorFailed is missing/],
    ['an entry for no alert', (t: string) => `${t}  MirrorTypo:\n    for: 5m\n`, /alerts.MirrorTypo is no alert/],
    ['a threshold no alert reads', (t: string) => t.replace('    jobs: 10000\n', '    jobs: 10000\n    job: 5\n'), /alerts.MirrorstateQueueBacklog.job is not used/],
    ['a bad duration', (t: string) => t.replace('lag: 5m', 'lag: 5 minutes'), /alerts.MirrorLagHigh.lag must be a duration/],
    ['a selector with braces', (t: string) => t.replace('selector: job="mirrorstate"', 'selector: \'{job="x"}\''), /selector is label matchers without braces/],
  ])('refuses %s, naming the key', (_what, edit, message) => {
    const text = edit(readFileSync(path.join(ROOT, CONFIG_FILE), 'utf8'));
    expect(() => generators.rulesFile(parseConfig(text))).toThrow(message);
  });
});

describe('dashboard', () => {
  it('has PromQL that promtool parses', () => {
    // Grafana's variables replaced by what they expand to, each expression a recording rule.
    const rules = dashboardExprs.map((expr, i) => ({
      record: `dashboard:expr_${i}`,
      expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', '.+').replaceAll('$mirror', '.+'),
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

  it("Tables row: every series is chosen by the Job and Mirror variables, and every per-table family is shown there", () => {
    const start = dashboard.panels.findIndex((p) => p.type === 'row' && p.title === 'Tables');
    const end = dashboard.panels.findIndex((p, i) => i > start && p.type === 'row');
    const row = dashboard.panels.slice(start + 1, end === -1 ? undefined : end);
    const exprs = row.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    for (const expr of exprs) {
      const series = [...expr.matchAll(/\b((?:peerdb|mirrorstate)_[a-z_]+)\b(\{[^}]*\})?/g)];
      expect(series.length, expr).toBeGreaterThan(0);
      for (const [whole, , matchers] of series) expect(matchers ?? '', `${whole} in ${expr}`).toMatch(/^\{job=~"\$job",mirror=~"\$mirror"[,}]/);
    }
    const used = new Set(exprs.flatMap(namesIn));
    expect(TABLE_FAMILY_NAMES.filter((f) => !used.has(f))).toEqual([]);
    // The Mirror variable lists the mirrors that reported tables, of the chosen jobs.
    expect(dashboard.templating.list.find((v) => v.name === 'mirror')?.query?.query).toBe('label_values(peerdb_mirror_tables{job=~"$job"}, mirror)');
  });
});
