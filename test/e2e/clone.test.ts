/**
 * The README's Quick start, word for word, as a newcomer meets it: the committed HEAD cloned into a
 * fresh private directory (mkdtemp: 0700, like /root or `mktemp -d`), `npm ci`, a first
 * `npx mirrorstate` before anything is built, `npm start` with no DATABASE_URL, then the README's
 * lines that publish an update and look at it, run as written (only the HTTP port differs).
 * `npm ci` prefers the local npm cache, so the test needs no network once the cache is warm; npx
 * gets a cache of its own in the test's directory, since it remembers each project it ran.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { waitFor } from '../helpers/daemon.js';
import { removeEmbeddedData } from '../helpers/embedded.js';
import { readDoc } from '../helpers/markdown.js';

const exec = promisify(execFile);
const here = fileURLToPath(new URL('.', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-clone-'));
const clone = path.join(dir, 'mirrorstate');
const env: NodeJS.ProcessEnv = { ...process.env, MIRRORSTATE_HTTP_PORT: '0', MIRRORSTATE_HTTP_HOST: '127.0.0.1' };
delete env.DATABASE_URL;
// Settings of the npm run that started this test (npm test) are no business of the newcomer's npm.
for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
let started: ReturnType<typeof spawn> | undefined;

/** The Quick start's block of lines that publish an update and look at it. */
function readmeLines(): string[] {
  const quickStart = readDoc('README.md').split(/^## /m).find((s) => s.startsWith('Quick start'))!;
  const block = [...quickStart.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]!).find((b) => b.includes('npx mirrorstate publish'));
  if (!block) throw new Error("the README's Quick start has no block with `npx mirrorstate publish`");
  return block.split('\n').filter((line) => line.trim() !== '');
}

afterAll(async () => {
  if (started && started.exitCode === null && started.signalCode === null) {
    // Ctrl-C, so the daemon stops its embedded server (in a process group of its own) too.
    process.kill(-(started.pid ?? 0), 'SIGINT');
    await once(started, 'exit');
  }
  removeEmbeddedData(path.join(clone, '.mirrorstate'));
  rmSync(dir, { recursive: true, force: true });
});

it("the README's quick start works in a fresh clone in a private directory", async () => {
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  const { stdout: top } = await exec('git', ['rev-parse', '--show-toplevel'], { cwd: here });
  await exec('git', ['clone', '--quiet', top.trim(), clone]);
  const installing = performance.now();
  await exec('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: clone, env });
  console.log(`npm ci took ${Math.round(performance.now() - installing)} ms`);
  const npx = { ...env, npm_config_cache: path.join(dir, 'npm-cache') };

  // Before any build: npx finds the checkout's command, which builds dist/ on first use.
  const help = await exec('npx', ['mirrorstate', '--help'], { cwd: clone, env: npx });
  expect(help.stdout).toMatch(/^usage: mirrorstate/);
  expect(existsSync(path.join(clone, 'dist', 'cli', 'index.js'))).toBe(true);

  // `npm start`, in a process group of its own as a terminal would run it (Ctrl-C reaches the group).
  const daemon = spawn('npm', ['start'], { cwd: clone, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started = daemon;
  let output = '';
  daemon.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  daemon.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let port = 0;
  await waitFor('the daemon to run', () => {
    if (daemon.exitCode !== null) throw new Error(`npm start exited with ${daemon.exitCode}:\n${output}`);
    port = Number(/"port":(\d+),"msg":"mirrorstate running"/.exec(output)?.[1] ?? 0);
    return port > 0;
  }, 90_000, 100);
  expect(output).toMatch(/embedded PostgreSQL running, DATABASE_URL=postgres:\/\/\S+@127\.0\.0\.1:\d+\/mirrorstate/);

  // The README's lines, from the clone, finding the daemon's embedded server on their own.
  const [publish, status, curl, ...rest] = readmeLines();
  expect(rest).toEqual([]);
  expect(publish).toMatch(/^npx mirrorstate publish --mirror orders_cdc --status running --rows-synced 1200$/);
  await exec('sh', ['-c', publish!], { cwd: clone, env: npx });
  expect(status).toBe('npx mirrorstate status');
  let statusOut = '';
  await waitFor('the update in `mirrorstate status`', async () => {
    statusOut = (await exec('sh', ['-c', status!], { cwd: clone, env: npx })).stdout;
    return /^orders_cdc\s+running\s/m.test(statusOut);
  }, 30_000, 250);
  expect(statusOut).toMatch(/^mirror\s+status\s/);
  expect(curl).toBe('curl -s localhost:9477/metrics | grep peerdb_mirror_status');
  const { stdout: metrics } = await exec('sh', ['-c', curl!.replace('localhost:9477', `127.0.0.1:${port}`)], { cwd: clone, env });
  expect(metrics).toContain('peerdb_mirror_status{mirror="orders_cdc",status="running"} 1');

  // Ctrl-C: the daemon shuts down and takes its embedded server with it.
  process.kill(-(daemon.pid ?? 0), 'SIGINT');
  await once(daemon, 'exit');
  const location = path.join(clone, '.mirrorstate', 'location');
  const cluster = existsSync(location) ? readFileSync(location, 'utf8').trim() : path.join(clone, '.mirrorstate', 'pgdata');
  expect(existsSync(path.join(cluster, 'PG_VERSION'))).toBe(true);
  expect(existsSync(path.join(cluster, 'postmaster.pid'))).toBe(false);
});
