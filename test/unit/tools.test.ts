/**
 * test/setup/tools.ts installs Chromium and Prometheus for the files that import the helpers that
 * run them (test/helpers/chromium.ts, test/helpers/prometheus.ts). A file that ran one of those
 * programs itself would be missed there, and fail on a fresh machine instead of getting it installed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const TEST = fileURLToPath(new URL('..', import.meta.url));
/** The helpers, and this file, whose examples below are text. */
const ALLOWED = new Set(['helpers/chromium.ts', 'helpers/prometheus.ts', 'unit/tools.test.ts']);
/** A spawn or exec of one of the programs by name: `spawnSync('promtool', …)`, `execFile('chromium', …)`. */
const RUNS_ONE = /\b(?:spawn|spawnSync|execFile|execFileSync|exec|execSync)\(\s*['"`](?:chromium|chromium-browser|promtool|prometheus)\b/;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

describe('the programs a fresh machine lacks', () => {
  it('are run only through their helpers, so the test command knows which files need them', () => {
    const all = files(TEST).map((f) => path.relative(TEST, f));
    expect(all).toContain('metrics/grafana.test.ts');
    const offenders = all.filter((f) => !ALLOWED.has(f) && RUNS_ONE.test(readFileSync(path.join(TEST, f), 'utf8')));
    expect(offenders).toEqual([]);
  });

  it('would be caught when a file runs one itself', () => {
    expect(RUNS_ONE.test("const r = spawnSync('promtool', ['check', 'config', file]);")).toBe(true);
    expect(RUNS_ONE.test("prometheus = spawn(\n    'prometheus',")).toBe(true);
    expect(RUNS_ONE.test('spawn(PROMETHEUS, args)')).toBe(false);
  });
});
