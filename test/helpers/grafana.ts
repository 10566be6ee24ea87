/**
 * What Grafana does to a PostgreSQL panel's SQL before the database sees it, so tests and the bench
 * run a dashboard's queries exactly as Grafana would:
 *
 * 1. Template variables (in the browser): `$name`, `${name}`, `[[name]]`, formatted by the SQL data
 *    source's interpolateVariable: a multi-value (or include-All) variable becomes its values, each
 *    quoted with `'` doubled, joined by `,`; a single value is inserted with `'` doubled, unquoted.
 * 2. Global substitutions (sqleng.Interpolate in pkg/tsdb/grafana-postgresql-datasource/sqleng):
 *    `$__interval_ms`, `$__interval`, `$__unixEpochFrom()`, `$__unixEpochTo()`.
 * 3. The PostgreSQL macro engine (macros.go in the same package): every `$__name(args)`, args split
 *    on `,` and trimmed, times in Go's RFC3339Nano in UTC, intervals in seconds written as Go's %v.
 */

export interface Variable {
  value: string | string[];
  multi?: boolean;
  includeAll?: boolean;
}

export interface TimeRange {
  from: Date;
  to: Date;
  /** The panel's interval ($__interval); default one minute. */
  intervalMs?: number;
}

const quoteLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`;

/** Grafana's templateSrv variable pattern (public/app/features/variables/utils.ts). */
const VARIABLE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\${(\w+)(?:\.([^:^}]+))?(?::([^}]+))?}/g;

export function interpolateVariables(sql: string, variables: Record<string, Variable>): string {
  return sql.replace(VARIABLE, (match, a?: string, b?: string, _bFormat?: string, c?: string) => {
    const name = a ?? b ?? c ?? '';
    const variable = variables[name];
    if (!variable) return match;
    const { value } = variable;
    if (Array.isArray(value)) return value.map(quoteLiteral).join(',');
    return variable.multi || variable.includeAll ? quoteLiteral(value) : value.replace(/'/g, "''");
  });
}

/** Go's time.RFC3339Nano of a UTC time: fraction without trailing zeros, none when zero, `Z`. */
export function rfc3339Nano(date: Date): string {
  const iso = date.toISOString();
  const [whole, fraction] = [iso.slice(0, 19), iso.slice(20, 23).replace(/0+$/, '')];
  return `${whole}${fraction ? `.${fraction}` : ''}Z`;
}

/** A float64 as Go's fmt %v writes it (strconv 'g', shortest): `86400`, `0.5`, `1e+06`, `2.592e+06`. */
export function goFloat(x: number): string {
  if (x === 0) return '0';
  const exponent = Math.floor(Math.log10(Math.abs(x)));
  if (exponent < -4 || exponent >= 6) {
    const [mantissa, exp] = x.toExponential().split('e') as [string, string];
    const sign = exp.startsWith('-') ? '-' : '+';
    return `${mantissa}e${sign}${exp.replace(/^[-+]/, '').padStart(2, '0')}`;
  }
  return String(x);
}

const UNIT_MS: Record<string, number> = {
  ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000, y: 365 * 86_400_000,
};

/** gtime.ParseInterval: `1d`, `2w`, `1y`, or a Go duration such as `1h30m`; milliseconds. */
export function parseInterval(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y|M)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new Error(`error parsing interval ${text}`);
  return parts.reduce((ms, [, n, unit]) => ms + Number(n) * (unit === 'M' ? 30 * 86_400_000 : UNIT_MS[unit ?? ''] ?? NaN), 0);
}

/** gtime.FormatInterval, as $__interval is written: the largest whole unit (`1m`, `15s`, `2h`, `1d`). */
function formatInterval(ms: number): string {
  for (const [unit, size] of [['y', UNIT_MS.y], ['w', UNIT_MS.w], ['d', UNIT_MS.d], ['h', UNIT_MS.h], ['m', UNIT_MS.m], ['s', UNIT_MS.s]] as [string, number][]) {
    if (ms >= size) return `${Math.floor(ms / size)}${unit}`;
  }
  return `${Math.floor(ms)}ms`;
}

function macro(name: string, args: string[], range: TimeRange): string {
  const column = () => {
    if (!args[0]) throw new Error(`missing time column argument for macro ${name}`);
    return args[0];
  };
  const group = () => {
    if (args.length < 2) throw new Error(`macro ${name} needs time column and interval and optional fill value`);
    return goFloat(parseInterval((args[1] ?? '').replace(/^'+|'+$/g, '')) / 1000);
  };
  const epoch = (d: Date) => Math.floor(d.getTime() / 1000);
  switch (name) {
    case '__time': return `${column()} AS "time"`;
    case '__timeEpoch': return `extract(epoch from ${column()}) as "time"`;
    case '__timeFilter': return `${column()} BETWEEN '${rfc3339Nano(range.from)}' AND '${rfc3339Nano(range.to)}'`;
    case '__timeFrom': return `'${rfc3339Nano(range.from)}'`;
    case '__timeTo': return `'${rfc3339Nano(range.to)}'`;
    case '__timeGroup': { const s = group(); return `floor(extract(epoch from ${column()})/${s})*${s}`; }
    case '__timeGroupAlias': { const s = group(); return `floor(extract(epoch from ${column()})/${s})*${s} AS "time"`; }
    case '__unixEpochFilter': return `${column()} >= ${epoch(range.from)} AND ${column()} <= ${epoch(range.to)}`;
    case '__unixEpochGroup': { const s = group(); return `floor((${column()})/${s})*${s}`; }
    case '__unixEpochGroupAlias': { const s = group(); return `floor((${column()})/${s})*${s} AS "time"`; }
    default: throw new Error(`unknown macro "${name}"`);
  }
}

/** Steps 2 and 3: the SQL as Grafana's backend sends it to PostgreSQL. */
export function expandMacros(sql: string, range: TimeRange): string {
  const intervalMs = range.intervalMs ?? 60_000;
  let text = sql
    .replaceAll('$__interval_ms', String(Math.floor(intervalMs)))
    .replaceAll('$__interval', formatInterval(intervalMs))
    .replaceAll('$__unixEpochFrom()', String(Math.floor(range.from.getTime() / 1000)))
    .replaceAll('$__unixEpochTo()', String(Math.floor(range.to.getTime() / 1000)));
  text = text.replace(/\$([_a-zA-Z0-9]+)\(([^)]*)\)/g, (match, name: string, args: string) => {
    // Before Grafana 5.3 `$__timeGroup(…),` meant the alias too; macros.go still honours that.
    const after = text.indexOf(match) + match.length;
    const effective = name === '__timeGroup' && text[after] === ',' ? '__timeGroupAlias' : name;
    return macro(effective, args.split(',').map((a) => a.trim()), range);
  });
  return text;
}

/** All three steps. */
export function grafanaSql(sql: string, variables: Record<string, Variable>, range: TimeRange): string {
  return expandMacros(interpolateVariables(sql, variables), range);
}
