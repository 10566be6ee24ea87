/**
 * `npm run generate`: grafana/config.yml and grafana/alerts/alerts.ts in, every file built from
 * them out (the list is in grafana/config.yml's header). test/metrics/generated.test.ts compares
 * the committed files with what this makes, so editing the config and running this is the only
 * way to change them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { ALERT_GROUPS, type AlertContext } from '../grafana/alerts/alerts.js';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const CONFIG_FILE = 'grafana/config.yml';
export const RULES_FILE = 'grafana/alerts/mirrorstate.rules.yml';
export const DASHBOARD_FILE = 'grafana/dashboards/mirrorstate.json';
export const PROMETHEUS_RULE_FILE = 'deploy/kubernetes/base/prometheusrule.yaml';
export const DASHBOARD_CONFIGMAP_FILE = 'deploy/kubernetes/base/dashboard-configmap.yaml';

export interface MonitoringConfig {
  selector: string;
  by: string;
  runbookUrl: string;
  alerts: Record<string, Record<string, string | number>>;
}

const DURATION = /^(?:\d+[smhdwy])+$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
const UNIT_WORDS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', y: 'year' };

function durationSeconds(text: string): number {
  return [...text.matchAll(/(\d+)([smhdwy])/g)].reduce((sum, [, n, unit]) => sum + Number(n) * UNIT_SECONDS[unit!]!, 0);
}

function humanDuration(text: string): string {
  const parts = [...text.matchAll(/(\d+)([smhdwy])/g)].map(([, n, unit]) => `${n} ${UNIT_WORDS[unit!]}${n === '1' ? '' : 's'}`);
  return parts.join(' ');
}

class ConfigProblem extends Error {
  constructor(message: string) {
    super(`${CONFIG_FILE}: ${message}`);
  }
}

export function parseConfig(text: string): MonitoringConfig {
  const raw = parse(text) as Partial<MonitoringConfig> | null;
  if (!raw || typeof raw !== 'object') throw new ConfigProblem('must be a mapping');
  for (const key of ['selector', 'by', 'runbookUrl'] as const) {
    if (typeof raw[key] !== 'string' || raw[key] === '') throw new ConfigProblem(`${key} must be a non-empty string`);
  }
  if (/[{}]/.test(raw.selector!)) throw new ConfigProblem('selector is label matchers without braces, e.g. job="mirrorstate"');
  const known = new Set(Object.keys(raw).filter((k) => !['selector', 'by', 'runbookUrl', 'alerts'].includes(k)));
  if (known.size > 0) throw new ConfigProblem(`unknown key ${[...known].join(', ')}`);
  const alerts = raw.alerts ?? {};
  const defined = ALERT_GROUPS.flatMap((g) => g.alerts.map((a) => a.alert));
  const missing = defined.filter((a) => !(a in alerts));
  const unknown = Object.keys(alerts).filter((a) => !defined.includes(a));
  if (missing.length > 0) throw new ConfigProblem(`alerts.${missing[0]} is missing: every alert of grafana/alerts/alerts.ts has an entry`);
  if (unknown.length > 0) throw new ConfigProblem(`alerts.${unknown[0]} is no alert of grafana/alerts/alerts.ts`);
  return raw as MonitoringConfig;
}

/** The rule groups as Prometheus reads them. */
export function ruleGroups(config: MonitoringConfig): unknown[] {
  return ALERT_GROUPS.map((group) => ({
    name: group.name,
    rules: group.alerts.map((definition) => {
      const values = config.alerts[definition.alert] ?? {};
      const used = new Set<string>(['severity']);
      const value = (key: string): string | number => {
        const v = values[key];
        if (v === undefined) throw new ConfigProblem(`alerts.${definition.alert}.${key} is missing`);
        used.add(key);
        return v;
      };
      const duration = (key: string): string => {
        const v = value(key);
        if (typeof v !== 'string' || !DURATION.test(v)) throw new ConfigProblem(`alerts.${definition.alert}.${key} must be a duration like 5m, got ${JSON.stringify(v)}`);
        return v;
      };
      const c: AlertContext = {
        m: (family, matchers) => `${family}{${config.selector}${matchers ? `,${matchers}` : ''}}`,
        by: config.by,
        selector: config.selector,
        duration,
        seconds: (key) => durationSeconds(duration(key)),
        human: (key) => humanDuration(duration(key)),
        number: (key) => {
          const v = value(key);
          if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigProblem(`alerts.${definition.alert}.${key} must be a number`);
          return v;
        },
      };
      const severity = values.severity ?? definition.severity;
      if (severity !== 'critical' && severity !== 'warning') throw new ConfigProblem(`alerts.${definition.alert}.severity must be critical or warning`);
      const rule = {
        alert: definition.alert,
        expr: definition.expr(c),
        ...(definition.for ? { for: duration('for') } : {}),
        labels: { severity },
        annotations: {
          summary: definition.summary(c),
          description: definition.description(c),
          runbook_url: `${config.runbookUrl}#${definition.alert.toLowerCase()}`,
        },
      };
      const unused = Object.keys(values).filter((k) => !used.has(k));
      if (unused.length > 0) throw new ConfigProblem(`alerts.${definition.alert}.${unused[0]} is not used by the alert`);
      return rule;
    }),
  }));
}

const YAML_OPTIONS = { lineWidth: 0, blockQuote: 'literal' } as const;

function header(...lines: string[]): string {
  return [`# GENERATED by \`npm run generate\` from ${CONFIG_FILE} and grafana/alerts/alerts.ts: do not edit.`, ...lines]
    .map((l) => (l.startsWith('#') ? l : `# ${l}`))
    .join('\n');
}

export function rulesFile(config: MonitoringConfig): string {
  return `${header(
    'Prometheus alert rules for mirrorstate; each runbook_url points at its section of docs/operating.md.',
    'Tested by mirrorstate.rules.test.yml with `promtool test rules`; the test suite runs it.',
  )}\n${stringify({ groups: ruleGroups(config) }, YAML_OPTIONS)}`;
}

const LABELS = { 'app.kubernetes.io/name': 'mirrorstate', 'app.kubernetes.io/part-of': 'mirrorstate' };

export function prometheusRuleFile(config: MonitoringConfig): string {
  const resource = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'mirrorstate', labels: LABELS },
    spec: { groups: ruleGroups(config) },
  };
  return `${header(`The rules of ${RULES_FILE}, for prometheus-operator.`)}\n${stringify(resource, YAML_OPTIONS)}`;
}

/** The committed dashboard with its Job variable listing the jobs the selector matches. */
export function dashboardFile(config: MonitoringConfig, current: string): string {
  const dashboard = JSON.parse(current) as { templating: { list: { name: string; query: unknown; definition?: string }[] } };
  const job = dashboard.templating.list.find((v) => v.name === 'job');
  if (!job) throw new Error(`${DASHBOARD_FILE} has no job variable`);
  const query = `label_values(mirrorstate_catalog_up{${config.selector}}, job)`;
  job.query = { query, refId: 'job' };
  job.definition = query;
  return `${JSON.stringify(dashboard, null, 2)}\n`;
}

export function dashboardConfigMapFile(dashboard: string): string {
  const resource = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'mirrorstate-dashboard',
      // Grafana's dashboard sidecar (k8s-sidecar, as kube-prometheus-stack runs it) loads every
      // ConfigMap with this label; the annotation names the folder where it searches for one.
      labels: { ...LABELS, grafana_dashboard: '1' },
      annotations: { grafana_folder: 'mirrorstate' },
    },
    data: { 'mirrorstate.json': dashboard },
  };
  return `${header(`The dashboard ${DASHBOARD_FILE}, for Grafana's sidecar.`)}\n${stringify(resource, YAML_OPTIONS)}`;
}

/** Every generated file by its path from the repository root, as the committed config makes it. */
export function generatedFiles(root = ROOT): Map<string, string> {
  const config = parseConfig(readFileSync(path.join(root, CONFIG_FILE), 'utf8'));
  const dashboard = dashboardFile(config, readFileSync(path.join(root, DASHBOARD_FILE), 'utf8'));
  return new Map([
    [RULES_FILE, rulesFile(config)],
    [DASHBOARD_FILE, dashboard],
    [PROMETHEUS_RULE_FILE, prometheusRuleFile(config)],
    [DASHBOARD_CONFIGMAP_FILE, dashboardConfigMapFile(dashboard)],
  ]);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [file, text] of generatedFiles()) {
    writeFileSync(path.join(ROOT, file), text);
    process.stdout.write(`wrote ${file}\n`);
  }
}
