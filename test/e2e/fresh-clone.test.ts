/**
 * The README's two commands on a machine that has nothing but Node and npm: the repository (this
 * checkout's HEAD) cloned into a fresh private `mktemp -d` directory, `npm ci` there, and then, in a
 * network namespace where nothing answers on 127.0.0.1:5432 and with a PATH that has no Chromium,
 * Prometheus, promtool or apt-get:
 *
 * - `npm start` runs the daemon on its embedded PostgreSQL, answers /metrics and /readyz, and a
 *   Ctrl-C (SIGINT to its process group) ends it with exit 0;
 * - `npm test -- <two small files>` passes on the embedded server it starts for the run;
 * - `npm test -- <files that run Chromium and promtool>` stops at once with one line naming the
 *   packages, since nothing can install them there.
 *
 * `npm ci` runs outside the namespace, as a newcomer's would, with the registry in reach (and the
 * npm cache warm, so it seldom needs it); inside, npm would wait out its network retries. As root
 * the namespace is a plain network namespace; otherwise it comes with a user namespace that maps
 * the user to itself, so the daemon inside still runs as that user.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeEmbeddedData } from '../helpers/embedded.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** What a fresh machine lacks; apt-get too, so that nothing can bring the rest. */
const ABSENT = new Set(['chromium', 'chromium-browser', 'prometheus', 'promtool', 'apt-get', 'apt']);
/** Small files, one of them on the database: enough to show the suite runs on the embedded server. */
const SMALL_FILES = ['test/unit/config.test.ts', 'test/catalog/applyBatch.test.ts'];
const TOOL_FILES = ['test/page/browser.test.ts', 'test/metrics/grafana.test.ts'];

interface Result {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

let home: string;
let clone: string;
let namespace: ChildProcess | undefined;
let env: NodeJS.ProcessEnv;

/** Runs to its end, collecting its output. */
async function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  const child = spawn(command, args, { cwd: options.cwd ?? clone, env: options.env ?? env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  return { code, signal, stdout, stderr };
}

const asRoot = process.getuid?.() === 0;

/** The arguments that run `command` inside the namespace. */
function inside(command: string, ...args: string[]): [string, string[]] {
  const user = asRoot ? [] : ['--user', '--preserve-credentials'];
  return ['nsenter', [`--target=${namespace!.pid}`, ...user, '--net', '--', command, ...args]];
}

const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '');

/** A bin directory of every command on this PATH but the absent ones. */
function strippedPath(): string {
  const bin = path.join(home, 'bin');
  mkdirSync(bin);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir || !existsSync(dir) || !statSync(dir).isDirectory()) continue;
    for (const name of readdirSync(dir)) {
      if (ABSENT.has(name) || existsSync(path.join(bin, name))) continue;
      symlinkSync(path.join(dir, name), path.join(bin, name));
    }
  }
  return bin;
}

beforeAll(async () => {
  home = mkdtempSync(path.join(tmpdir(), 'mirrorstate-fresh-'));
  expect(statSync(home).mode & 0o777).toBe(0o700);
  clone = path.join(home, 'mirrorstate');
  const cloned = await run('git', ['clone', '--quiet', ROOT, clone], { cwd: home, env: process.env });
  expect(cloned.stderr).toBe('');
  // A newcomer's environment: none of the run's database, tools or CI settings leak in.
  env = { PATH: strippedPath(), HOME: process.env.HOME, LANG: 'C.UTF-8', MIRRORSTATE_HTTP_PORT: '0' };

  const ci = await run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund']);
  expect(ci.code, ci.stderr).toBe(0);

  const user = asRoot ? [] : ['--map-current-user', '--keep-caps'];
  namespace = spawn('unshare', [...user, '--net', 'sh', '-c', 'ip link set lo up && echo up && exec sleep 3600'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(namespace.stdout!, 'data')) as [Buffer];
  expect(line.toString().trim()).toBe('up');
}, 300_000);

afterAll(async () => {
  if (namespace && namespace.exitCode === null) {
    namespace.kill('SIGKILL');
    await once(namespace, 'exit');
  }
  if (clone) removeEmbeddedData(path.join(clone, '.mirrorstate'));
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('a fresh clone with no PostgreSQL service, Chromium or Prometheus', () => {
  it('has nothing on 127.0.0.1:5432 and none of those programs on PATH', async () => {
    const probe = await run(...inside(
      process.execPath,
      '-e',
      "require('net').connect(5432, '127.0.0.1').on('connect', () => { console.log('open'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })",
    ));
    expect(probe.stdout.trim()).toBe('ECONNREFUSED');
    const which = await run('sh', ['-c', 'for c in chromium prometheus promtool apt-get npm git; do command -v $c >/dev/null && echo $c; done']);
    expect(which.stdout.split('\n').filter(Boolean)).toEqual(['npm', 'git']);
  });

  it('npm start: the daemon on its embedded PostgreSQL, answering /metrics and /readyz; Ctrl-C ends it with 0', async () => {
    const [command, args] = inside('npm', 'start');
    // A group of its own, so the SIGINT below reaches npm, its shell and the daemon, as Ctrl-C does.
    const daemon = spawn(command, args, { cwd: clone, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    daemon.stdout.on('data', (c: Buffer) => (output += c.toString()));
    daemon.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = once(daemon, 'exit') as Promise<[number | null, string | null]>;
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not running within 180 s:\n${output}`)), 180_000);
        daemon.stdout.on('data', () => {
          const match = /"port":(\d+),"msg":"mirrorstate running"/.exec(output);
          if (match) {
            clearTimeout(timer);
            resolve(Number(match[1]));
          }
        });
        void exited.then(([code, signal]) => {
          clearTimeout(timer);
          reject(new Error(`npm start exited (${code ?? signal}) before the daemon ran:\n${output}`));
        });
      });
      expect(output).toContain('embedded PostgreSQL running, DATABASE_URL=postgres://');

      // The daemon listens inside the namespace: ask from there.
      const ask = await run(...inside(
        process.execPath,
        '-e',
        `(async () => {
          const get = async (p) => { const r = await fetch('http://127.0.0.1:${port}' + p); return { status: r.status, body: await r.text() }; };
          let ready;
          for (let i = 0; i < 300; i++) { ready = await get('/readyz'); if (ready.status === 200) break; await new Promise((r) => setTimeout(r, 200)); }
          console.log(JSON.stringify({ ready, metrics: await get('/metrics') }));
        })()`,
      ));
      expect(ask.code, ask.stderr).toBe(0);
      const { ready, metrics } = JSON.parse(ask.stdout) as Record<'ready' | 'metrics', { status: number; body: string }>;
      expect(ready.status, ready.body).toBe(200);
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(/^mirrorstate_build_info\{/m);
    } finally {
      if (daemon.exitCode === null && daemon.signalCode === null) process.kill(-daemon.pid!, 'SIGINT');
    }
    const [code, signal] = await exited;
    expect({ code, signal }, output).toEqual({ code: 0, signal: null });
  }, 300_000);

  it('npm test, for a couple of small files, passes on the embedded PostgreSQL it starts', async () => {
    const result = await run(...inside('npm', 'test', '--', ...SMALL_FILES));
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain('tests: no PostgreSQL at 127.0.0.1:5432, running on the embedded server');
    expect(plain(result.stdout)).toMatch(/Test Files\s+2 passed \(2\)/);
  }, 300_000);

  it('npm test, for files that run Chromium and promtool, stops at once with one line naming the packages', async () => {
    const result = await run(...inside('npm', 'test', '--', ...TOOL_FILES));
    expect(result.code).not.toBe(0);
    expect(result.stderr.split('\n').filter(Boolean)).toEqual([
      'tests: chromium, promtool, prometheus not on PATH (run by test/metrics/grafana.test.ts, test/page/browser.test.ts): install the Debian ' +
        'packages chromium prometheus (apt-get install --no-install-recommends chromium prometheus; run as root, the tests do it themselves)',
    ]);
    // Stopped before any file ran, and before any database was started.
    expect(plain(result.stdout)).not.toMatch(/Test Files|embedded server/);
  }, 300_000);
});
