/**
 * The two exposition formats /metrics speaks: Prometheus text 0.0.4 and OpenMetrics 1.0.
 *
 * Sample lines are the same in both (label values escape backslash, double quote and line feed;
 * counter samples carry `_total`), so per-mirror text is rendered once and served in either format.
 * Only the family headers differ: OpenMetrics names a counter family without `_total`, escapes `"`
 * in HELP as well, and ends the exposition with `# EOF`.
 *
 * The daemon's own prom-client registry is rendered here too, from `getMetricsAsJSON()`, rather
 * than with `registry.metrics()`: prom-client's OpenMetrics path renames counter objects in place
 * (strips `_total` from `metric.name`), which would corrupt every later text-format scrape.
 */
import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';

export type Format = 'text' | 'openmetrics';

export const CONTENT_TYPES: Record<Format, string> = {
  text: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

export type FamilyType = 'gauge' | 'counter' | 'histogram' | 'summary' | 'untyped';

export interface Family {
  name: string;
  help: string;
  type: FamilyType;
}

/**
 * OpenMetrics when the Accept header lists `application/openmetrics-text` with a q above that of
 * every text/plain entry (Prometheus sends it first, with the highest q); text 0.0.4 otherwise.
 */
export function negotiateFormat(accept: string | undefined): Format {
  if (!accept) return 'text';
  let openmetrics = -1;
  let text = -1;
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (!Number.isFinite(q)) continue;
    if (type === 'application/openmetrics-text') openmetrics = Math.max(openmetrics, q);
    else if (type === 'text/plain' || type === '*/*' || type === 'text/*') text = Math.max(text, q);
  }
  return openmetrics > 0 && openmetrics >= text ? 'openmetrics' : 'text';
}

const LABEL_ESCAPES = /[\\"\n]/g;
const LABEL_ESCAPE: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n' };

/** A label value as both formats require: `\` → `\\`, `"` → `\"`, line feed → `\n`; all other UTF-8 as is. */
export function escapeLabelValue(value: string): string {
  return value.replace(LABEL_ESCAPES, (c) => LABEL_ESCAPE[c] ?? c);
}

function escapeHelp(help: string, format: Format): string {
  const escaped = help.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
  return format === 'openmetrics' ? escaped.replaceAll('"', '\\"') : escaped;
}

/** `le`-style sample values: integers and floats as JavaScript prints them; NaN and ±Inf spelt the exposition way. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function counterFamilyName(name: string, format: Format): string {
  return format === 'openmetrics' && name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
}

/** The `# HELP` and `# TYPE` lines of a family, named as `format` wants. */
export function familyHeader(family: Family, format: Format): string {
  const name = family.type === 'counter' ? counterFamilyName(family.name, format) : family.name;
  const type = format === 'openmetrics' && family.type === 'untyped' ? 'unknown' : family.type;
  return `# HELP ${name} ${escapeHelp(family.help, format)}\n# TYPE ${name} ${type}\n`;
}

function labelText(labels: Record<string, string | number | undefined>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(labels)) {
    if (value === undefined) continue;
    const text = typeof value === 'number' ? formatValue(value) : value;
    parts.push(`${key}="${escapeLabelValue(text)}"`);
  }
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

function renderRegistryFamily(metric: MetricObjectWithValues<MetricValue<string>>, format: Format): string {
  const family: Family = { name: metric.name, help: metric.help, type: String(metric.type) as FamilyType };
  let text = familyHeader(family, format);
  for (const sample of metric.values) {
    let name = (sample as { metricName?: string }).metricName ?? metric.name;
    // Counters without `_total` in their name still expose it in OpenMetrics.
    if (family.type === 'counter' && format === 'openmetrics' && !name.endsWith('_total')) name += '_total';
    text += `${name}${labelText(sample.labels)} ${formatValue(sample.value)}\n`;
  }
  return text;
}

/** Every family of a prom-client registry, in `format`, without the OpenMetrics `# EOF`. */
export async function renderRegistry(registry: Registry, format: Format): Promise<string> {
  const metrics = (await registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[];
  return metrics.map((m) => renderRegistryFamily(m, format)).join('');
}
