/**
 * Both shipped dashboards against Grafana's own schema (@grafana/schema) and the provisioning files:
 * the typecheck (test/typecheck/dashboards.ts) checks their shape with enums widened to strings;
 * here each enum-valued field must hold one of the schema's enum values, each panel and query must
 * name a data source the provisioning files define (by uid and type, or through the dashboard's
 * datasource variable of that type), and each variable a query uses must be defined.
 */
import { readFileSync } from 'node:fs';
import {
  BarGaugeDisplayMode, BarGaugeValueMode, FieldColorModeId, GraphDrawStyle, LegendDisplayMode, type LegendPlacement, MappingType, SortOrder, ThresholdsMode, TooltipDisplayMode,
  TableCellDisplayMode, type TableCellOptions, VariableHide, VisibilityMode,
} from '@grafana/schema';
import { describe, expect, it } from 'vitest';
import { DASHBOARDS } from '../typecheck/dashboards.js';

const ROOT = new URL('../../', import.meta.url);

/** `uid:` and `type:` of each data source in a provisioning file (two-space YAML, one list). */
function provisioned(file: string): { uid: string; type: string }[] {
  const text = readFileSync(new URL(`grafana/provisioning/datasources/${file}`, ROOT), 'utf8');
  return text.split(/\n\s+- name:/).slice(1).map((block) => ({
    uid: /\n\s+uid:\s*(\S+)/.exec(block)?.[1] ?? '',
    type: /\n\s+type:\s*(\S+)/.exec(block)?.[1] ?? '',
  }));
}

/** Enum-valued keys, wherever they appear in a panel, and the schema's enum for each. */
const ENUMS: Record<string, object> = {
  drawStyle: GraphDrawStyle, showValue: VisibilityMode,
};
/** Keys whose enum depends on where they are. */
const AT_PATH: [RegExp, object][] = [
  [/thresholds\.mode$/, ThresholdsMode], [/mappings\.\d+\.type$/, MappingType], [/color\.mode$/, FieldColorModeId],
  [/tooltip\.mode$/, TooltipDisplayMode], [/tooltip\.sort$/, SortOrder], [/templating\.list\.\d+\.hide$/, VariableHide],
  [/legend\.displayMode$/, LegendDisplayMode], [/legend\.placement$/, ['bottom', 'right'] satisfies LegendPlacement[]], [/^panels\.\d+\.options\.displayMode$/, BarGaugeDisplayMode],
];

/**
 * A field override's value is untyped in the schema; a table cell's options (`custom.cellOptions`)
 * are the schema's TableCellOptions, so their enums are checked as the field defaults' would be.
 */
function cellOptionViolations(value: TableCellOptions, path: string, out: string[]): void {
  const enums: [string, object][] = [['type', TableCellDisplayMode], ['mode', BarGaugeDisplayMode], ['valueDisplayMode', BarGaugeValueMode]];
  for (const [key, schema] of enums) {
    const v = (value as unknown as Record<string, unknown>)[key];
    if ((key === 'type' || v !== undefined) && !Object.values(schema).includes(v)) out.push(`${path}.${key} = ${JSON.stringify(v)}`);
  }
}

function enumViolations(value: unknown, path: string, out: string[]): string[] {
  if (Array.isArray(value)) value.forEach((v, i) => enumViolations(v, `${path}.${i}`, out));
  else if (value && typeof value === 'object') {
    const property = value as { id?: unknown; value?: unknown };
    if (property.id === 'custom.cellOptions') cellOptionViolations(property.value as TableCellOptions, `${path}.value`, out);
    for (const [key, v] of Object.entries(value)) enumViolations(v, path ? `${path}.${key}` : key, out);
  } else {
    const key = path.split('.').at(-1) ?? '';
    const schema = AT_PATH.find(([re]) => re.test(path))?.[1] ?? (path.includes('.options.') || path.includes('.custom.') ? ENUMS[key] : undefined);
    if (schema && !Object.values(schema).includes(value)) out.push(`${path} = ${JSON.stringify(value)}`);
  }
  return out;
}

interface AnyPanel { title: string; datasource?: { type: string; uid: string }; targets?: { datasource?: { type: string; uid: string }; rawSql?: string; expr?: string }[]; panels?: AnyPanel[] }
const panelsOf = (d: { panels?: unknown[] }) => (d.panels ?? []) as AnyPanel[];

describe.each(Object.entries(DASHBOARDS))('the %s dashboard', (name, dashboard) => {
  it('holds only values of the schema\'s enums', () => {
    const out = enumViolations(dashboard, '', []);
    expect(out).toEqual([]);
  });

  it('names only provisioned data sources, and defines every variable its queries use', () => {
    const sources = provisioned(name === 'catalog' ? 'catalog.yml' : 'prometheus.yml');
    expect(sources).toHaveLength(1);
    const [source] = sources;
    const variables = (dashboard.templating?.list ?? []) as { name: string; type: string; query?: unknown; datasource?: { type: string; uid: string } }[];
    const dsVariable = variables.find((v) => v.type === 'datasource');
    // A reference is the provisioned uid itself, or the datasource variable that lists that type.
    const accepted = (ref: { type: string; uid: string } | undefined) =>
      ref !== undefined && ref.type === source?.type && (ref.uid === source.uid || (ref.uid === `\${${dsVariable?.name}}` && dsVariable?.query === source.type));
    const panels = panelsOf(dashboard).filter((p) => p.targets);
    expect(panels.length).toBeGreaterThan(0);
    for (const panel of panels) {
      expect(accepted(panel.datasource), panel.title).toBe(true);
      for (const target of panel.targets ?? []) {
        expect(accepted(target.datasource), panel.title).toBe(true);
        const query = target.rawSql ?? target.expr ?? '';
        for (const [, a, b] of query.matchAll(/\$(?:\{(\w+)[^}]*\}|(\w+))/g)) {
          const used = a ?? b ?? '';
          if (used.startsWith('__')) continue;
          expect(variables.map((v) => v.name), `${panel.title}: $${used}`).toContain(used);
        }
      }
    }
    for (const v of variables.filter((v) => v.type === 'query')) expect(accepted(v.datasource), v.name).toBe(true);
  });
});

it('the catalog dashboard is provisioned under its own uid, beside the Prometheus one', () => {
  expect(DASHBOARDS.catalog.uid).toBe('mirrorstate-catalog');
  expect(DASHBOARDS.prometheus.uid).not.toBe(DASHBOARDS.catalog.uid);
  expect(provisioned('catalog.yml')[0]).toEqual({ uid: 'mirrorstate-catalog', type: 'grafana-postgresql-datasource' });
});
