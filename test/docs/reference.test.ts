/**
 * The reference in docs/ (and the README's configuration table and alert list) says exactly what
 * the code does: every metric family, setting, HTTP route, exit code and alert rule the project has
 * is documented, and nothing documented is missing from it. Each failure names the file to edit and the names at fault.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/failure.js';
import { SETTINGS } from '../../src/config.js';
import { parseUpdate, STATUSES, statusCode } from '../../src/update.js';
import { FAMILIES } from '../helpers/families.js';
import { firstColumnNames, prose, readDoc, ROOT, section } from '../helpers/markdown.js';

/** What one side has and the other lacks, worded for the person who must fix it. */
function differences(what: string, file: string, inCode: Iterable<string>, inDocs: Iterable<string>, code = 'the code'): string[] {
  const inCodeSet = new Set(inCode);
  const docs = new Set(inDocs);
  return [
    ...[...inCodeSet].filter((n) => !docs.has(n)).map((n) => `${what} ${n} is in ${code} but not documented in ${file}`),
    ...[...docs].filter((n) => !inCodeSet.has(n)).map((n) => `${what} ${n} is documented in ${file} but not in ${code}`),
  ];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') ? [full] : [];
  });
}

const SRC = path.join(ROOT, 'src');
const source = sourceFiles(SRC).map((file) => ({ file: path.relative(ROOT, file), text: readFileSync(file, 'utf8') }));

describe('docs/metrics.md', () => {
  it('documents every metric family the daemon serves, and no other', () => {
    // The first column of its tables: `peerdb_mirror_status{mirror,status}` and the like.
    const documented = firstColumnNames(readDoc('docs/metrics.md'))
      .map((name) => name.replace(/\{.*$/, ''))
      .filter((name) => /^(peerdb|mirrorstate)_/.test(name));
    expect(differences('metric family', 'docs/metrics.md', FAMILIES, documented)).toEqual([]);
  });
});

/** Rows of the configuration table in `text`: variable, flag, default, as written. */
function settingRows(text: string): { env: string; flag: string; defaultText: string }[] {
  return [...text.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*`--([a-z0-9-]+)`\s*\|[^\n]*\|\s*([^|\n]*?)\s*\|\s*$/gm)].map((m) => ({
    env: m[1]!, flag: m[2]!, defaultText: m[3]!.replaceAll('`', ''),
  }));
}

describe('settings', () => {
  const inCode = SETTINGS.map((s) => `${s.env} / --${s.flag} (default ${s.defaultText})`);
  for (const [file, title] of [['docs/cli.md', 'Configuration'], ['README.md', 'Configuration']] as const) {
    it(`are each in ${file}'s ${title} table with their flag and default, and nothing more`, () => {
      const rows = settingRows(section(readDoc(file), title));
      const documented = rows.map((r) => `${r.env} / --${r.flag} (default ${r.defaultText})`);
      expect(differences('setting', file, inCode, documented)).toEqual([]);
    });
  }
});

/**
 * The routes the server answers, read from the source: every `.route('METHOD', pattern, …)` call,
 * the pattern a regular expression literal or a constant holding one.
 */
function codeRoutes(): { method: string; pattern: RegExp; where: string }[] {
  const constants = new Map<string, string>();
  for (const { text } of source) {
    for (const m of text.matchAll(/const\s+([A-Z_][A-Z0-9_]*)\s*=\s*(\/\^[^\n]*?\$\/)\s*;/g)) constants.set(m[1]!, m[2]!);
  }
  const routes: { method: string; pattern: RegExp; where: string }[] = [];
  for (const { file, text } of source) {
    for (const m of text.matchAll(/\.route\(\s*'([A-Z]+)'\s*,\s*(\/\^[^\n]*?\$\/|[A-Z_][A-Z0-9_]*)\s*,/g)) {
      const literal = m[2]!.startsWith('/') ? m[2]! : constants.get(m[2]!);
      if (literal === undefined) throw new Error(`${file}: route pattern ${m[2]} is not a /^…$/ constant this test can read`);
      routes.push({ method: m[1]!, pattern: new RegExp(literal.slice(1, -1)), where: file });
    }
  }
  return routes;
}

/** `GET /api/v1/mirrors/{mirror}` → a path the route must answer: `{mirror}` filled in, query dropped. */
function samplePath(route: string): string {
  return route.replaceAll('{mirror}', 'orders_cdc').split('?', 1)[0]!;
}

describe('docs/http.md', () => {
  it('lists every route the server answers, and no other', () => {
    const routes = codeRoutes();
    expect(routes.length).toBeGreaterThan(0);
    const documented = firstColumnNames(section(readDoc('docs/http.md'), 'Routes')).map((cell) => {
      const [method = '', route = ''] = cell.split(' ', 2);
      return { method, route };
    });
    const problems = [
      ...routes
        .filter((r) => !documented.some((d) => d.method === r.method && r.pattern.test(samplePath(d.route))))
        .map((r) => `route ${r.method} ${r.pattern.source} (${r.where}) is in the code but not documented in docs/http.md's Routes table`),
      ...documented
        .filter((d) => !routes.some((r) => d.method === r.method && r.pattern.test(samplePath(d.route))))
        .map((d) => `route ${d.method} ${d.route} is documented in docs/http.md but no route in src/ answers it`),
    ];
    expect(problems).toEqual([]);
  });
});

/** Where the command line lives: src/cli/. */
const CLI_FILE = /^src\/cli\//;

describe('docs/cli.md', () => {
  it('lists every exit code the command line uses, and no other', () => {
    const cli = source.filter((f) => CLI_FILE.test(f.file));
    expect(cli.length).toBeGreaterThan(0);
    // A command returns its exit code; the process ends with process.exit(n) or process.exitCode = n.
    // …or one of the named codes of cli/failure.ts.
    const used = [
      ...cli.flatMap(({ text }) => [...text.matchAll(/(?:\breturn|process\.exit\(|process\.exitCode\s*=)\s*(\d+)\b/g)].map((m) => m[1]!)),
      ...Object.values(EXIT).map(String),
    ];
    const documented = [...section(readDoc('docs/cli.md'), 'Exit codes').matchAll(/^\|\s*(\d+)\s*\|/gm)].map((m) => m[1]!);
    expect(differences('exit code', 'docs/cli.md', used, documented)).toEqual([]);
  });
});

describe('alerts', () => {
  const RULES = 'grafana/alerts/mirrorstate.rules.yml';
  const rules = readFileSync(path.join(ROOT, RULES), 'utf8');
  const alerts = [...rules.matchAll(/^\s*-\s*alert:\s*(\S+)\s*$/gm)].map((m) => m[1]!);

  it('each have a runbook section in docs/operating.md, and no other runbook is there', () => {
    expect(alerts.length).toBeGreaterThan(0);
    const runbooks = [...section(readDoc('docs/operating.md'), 'Alert runbooks').matchAll(/^###\s+(\S+)\s*$/gm)].map((m) => m[1]!);
    expect(differences('alert', 'docs/operating.md (Alert runbooks)', alerts, runbooks, RULES)).toEqual([]);
  });

  it("are each listed in README.md's Alerts section, and nothing more", () => {
    const listed = [...section(readDoc('README.md'), 'Alerts').matchAll(/^-\s*\[`([^`]+)`\]/gm)].map((m) => m[1]!);
    expect(differences('alert', 'README.md (Alerts)', alerts, listed, RULES)).toEqual([]);
  });
});

describe('docs/message.md', () => {
  it('lists every field of the update message, and no other', () => {
    const parsed = parseUpdate({ mirror: 'orders_cdc', status: 'running', observedAt: new Date().toISOString() });
    if (!parsed.ok) throw new Error(`a minimal update was refused: ${JSON.stringify(parsed.errors)}`);
    // What the parser hands on is every field it knows; `payload` is the update as received.
    const inCode = Object.keys(parsed.value).filter((key) => key !== 'payload');
    // First cells such as `workflowId`, `runId`: every name in backticks.
    const documented = firstCells(section(readDoc('docs/message.md'), 'Fields'));
    expect(differences('update field', 'docs/message.md (Fields)', inCode, documented)).toEqual([]);
  });

  it('gives every status its code', () => {
    const inCode = STATUSES.map((s) => `${s} ${statusCode(s)}`);
    const documented = [...section(readDoc('docs/message.md'), 'Statuses').matchAll(/`([a-z_]+)` (\d+)/g)].map((m) => `${m[1]} ${m[2]}`);
    expect(differences('status', 'docs/message.md (Statuses)', inCode, documented)).toEqual([]);
  });
});

/** Every name in backticks in the first cell of each table row: `dlq list`, `dlq show` … */
function firstCells(text: string): string[] {
  // A cell ends at the first | that is not escaped as \|.
  return [...prose(text).matchAll(/^\|((?:\\\||[^|\n])*)\|/gm)].flatMap((m) => [...m[1]!.matchAll(/`([^`]+)`/g)].map((n) => n[1]!));
}

describe('commands', () => {
  // What `mirrorstate --help` says, from the built CLI (npm test builds first).
  const help = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/index.js'), '--help'], { encoding: 'utf8' });
  const commandsPart = help.stdout.slice(help.stdout.indexOf('commands:'), help.stdout.indexOf('\nsettings'));
  /** `dlq list`, `dlq show`, … and `run`, `publish`, …: a command with its subcommand, if any. */
  const commandName = (text: string) => /^(dlq [a-z]+|[a-z-]+)/.exec(text)?.[1] ?? text;
  const inHelp = [...commandsPart.matchAll(/^ {2}(\S+(?: [a-z]+)?)/gm)].map((m) => commandName(m[1]!));
  const helpFlags = [...commandsPart.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]);

  it('are each in docs/cli.md and the README, and nothing more', () => {
    expect(help.status, help.stderr).toBe(0);
    expect(inHelp.length).toBeGreaterThan(5);
    for (const [file, title] of [['docs/cli.md', 'Commands'], ['README.md', 'Command line']] as const) {
      const documented = firstCells(section(readDoc(file), title)).map(commandName);
      expect(differences('command', `${file} (${title})`, inHelp, documented, 'mirrorstate --help')).toEqual([]);
    }
  });

  it("have each of their flags in docs/cli.md, and no flag --help lacks", () => {
    const documented = [...section(readDoc('docs/cli.md'), 'Commands').split('\n## ')[0]!.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]);
    expect(differences('command flag', 'docs/cli.md (Commands)', helpFlags, documented, 'mirrorstate --help')).toEqual([]);
  });
});
