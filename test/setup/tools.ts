/**
 * The programs some test files run besides Node and PostgreSQL: Chromium (the status page in a real
 * browser; test/helpers/chromium.ts) and Prometheus's `promtool` and `prometheus` (exposition, rules,
 * a real scrape; test/helpers/prometheus.ts). Before any file runs, the files of this run that
 * import one of those helpers are found; a program they need that is not on PATH is installed with
 * apt-get when running as root where apt-get exists, else the run stops with one line naming what
 * to install. Nothing is asked of the machine when nothing is missing.
 *
 * A reporter rather than a globalSetup because only a reporter is told which files this run selected
 * (onTestRunStart, before the globalSetup starts a database): a run of files that need none of these
 * programs works without them.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Reporter, TestSpecification } from 'vitest/node';
import { CHROMIUM } from '../helpers/chromium.js';
import { PROMETHEUS, PROMTOOL } from '../helpers/prometheus.js';

interface Tool {
  /** The test helper (test/helpers/<helper>.ts) through which test files run them. */
  helper: string;
  commands: string[];
  /** The Debian package that brings them. */
  debian: string;
}

const TOOLS: Tool[] = [
  { helper: 'chromium', commands: [CHROMIUM], debian: 'chromium' },
  { helper: 'prometheus', commands: [PROMTOOL, PROMETHEUS], debian: 'prometheus' },
];

/** Does a test file with this source import the tool's helper? */
function imports(source: string, tool: Tool): boolean {
  return new RegExp(`from '(\\.\\./)+helpers/${tool.helper}\\.js'`).test(source);
}

export function onPath(command: string): boolean {
  const candidates = command.includes('/')
    ? [command]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, command));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function stop(message: string): never {
  process.stderr.write(`tests: ${message}\n`);
  process.exit(1);
}

/** Pids of running `prometheus` processes owned by the user `prometheus`: the package's service. */
function prometheusServices(): number[] {
  const user = spawnSync('id', ['-u', 'prometheus'], { encoding: 'utf8' });
  if (user.status !== 0) return [];
  const uid = user.stdout.trim();
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (/^Name:\s+prometheus$/m.test(status) && new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(status)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function aptGet(args: string[]): string | undefined {
  const r = spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status === 0) return undefined;
  const last = `${r.stderr ?? ''}\n${r.stdout ?? ''}`.split('\n').map((l) => l.trim()).filter(Boolean);
  return r.error?.message ?? last.find((l) => l.startsWith('E:')) ?? last.at(-1) ?? `exit ${r.status}`;
}

export function ensureTools(files: string[]): void {
  const sources = files.map((file) => ({ file, source: readFileSync(file, 'utf8') }));
  const missing = TOOLS.filter((tool) => sources.some((s) => imports(s.source, tool)) && tool.commands.some((c) => !onPath(c)));
  if (missing.length === 0) return;

  const commands = missing.flatMap((t) => t.commands.filter((c) => !onPath(c))).join(', ');
  const users = sources.filter((s) => missing.some((t) => imports(s.source, t))).map((s) => path.relative(process.cwd(), s.file)).sort();
  const packages = missing.map((t) => t.debian);
  const need = `${commands} not on PATH (run by ${users.join(', ')})`;
  const install = `apt-get install --no-install-recommends ${packages.join(' ')}`;
  if (process.getuid?.() !== 0 || !onPath('apt-get')) {
    stop(`${need}: install the Debian ${packages.length === 1 ? 'package' : 'packages'} ${packages.join(' ')} (${install}; run as root, the tests do it themselves)`);
  }

  process.stdout.write(`tests: ${need}: ${install}\n`);
  const services = new Set(prometheusServices());
  const failed = aptGet(['update', '-qq']) ?? aptGet(['install', '-y', '-qq', '--no-install-recommends', ...packages]);
  // The package starts a Prometheus service (on :9090) where an init system runs; the tests start their own.
  for (const pid of prometheusServices()) if (!services.has(pid)) process.kill(pid, 'SIGTERM');
  if (failed) stop(`${need}, and ${install} failed (${failed}): install ${packages.join(' ')} by hand`);
  const still = missing.flatMap((t) => t.commands.filter((c) => !onPath(c)));
  if (still.length > 0) {
    const them = still.length === 1 ? 'it' : 'them';
    stop(`${need}; apt-get installed ${packages.join(' ')}, yet ${still.join(', ')} ${still.length === 1 ? 'is' : 'are'} still not on PATH: put ${them} on PATH`);
  }
}

export class ToolsReporter implements Reporter {
  onTestRunStart(specifications: ReadonlyArray<TestSpecification>): void {
    ensureTools([...new Set(specifications.map((s) => s.moduleId))]);
  }
}
