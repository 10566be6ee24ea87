/**
 * The README's quick start: without DATABASE_URL the daemon starts a real embedded PostgreSQL for
 * ./.mirrorstate/, prints its URL, and the one-shot commands find it there — from a private
 * directory (mkdtemp makes it 0700) as a checkout in /root or `mktemp -d` would be. A start-up
 * failure ends in one line that says what to do.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { SHARED_HOME } from '../../src/embedded/placement.js';
import { removeEmbeddedData } from '../helpers/embedded.js';

const exec = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-quickstart-'));
const env: NodeJS.ProcessEnv = { ...process.env, MIRRORSTATE_HTTP_PORT: '0' };
delete env.DATABASE_URL;
let daemon: DaemonProcess | undefined;

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  removeEmbeddedData(path.join(dir, '.mirrorstate'));
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI to its end; resolves to its exit code and output, whatever the code. */
async function run(args: string[], cwd: string) {
  return exec(process.execPath, [CLI, ...args], { cwd, env }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
}

it('runs on an embedded PostgreSQL from a private directory when no DATABASE_URL is given', async () => {
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  daemon = await startDaemon({ databaseUrl: undefined, cwd: dir });
  expect(daemon.output()).toMatch(/embedded PostgreSQL running, DATABASE_URL=postgres:\/\/\S+@127\.0\.0\.1:\d+\/mirrorstate/);
  expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);

  await exec(process.execPath, [CLI, 'publish', '--mirror', 'quickstart', '--status', 'running'], { cwd: dir, env });
  await waitFor('the update in the embedded catalog', async () => {
    const { stdout } = await exec(process.execPath, [CLI, 'status'], { cwd: dir, env });
    return /quickstart\s+running/.test(stdout);
  }, 30_000, 200);
  expect(await (await fetch(`${daemon.url}/metrics`)).text()).toContain('peerdb_mirror_status{mirror="quickstart",status="running"} 1');
});

it('a second daemon on the same data directory stops with one line that says what to do', async () => {
  const second = await run(['run'], dir);
  expect(second.code).toBe(1);
  expect(second.stderr).toMatch(/^mirrorstate: an embedded PostgreSQL \(pid \d+\) already runs on \S+: another mirrorstate daemon is using this data directory\. Stop that daemon first/);
  expect(second.stderr.trim().split('\n')).toHaveLength(1);
  // The log has it as one fatal line, without a stack.
  expect(second.stdout.trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string })).toEqual([
    expect.objectContaining({ level: 60, msg: 'could not start' }),
  ]);
});

it('stops its embedded server with the daemon, and starts again on the same data', async () => {
  expect(await daemon?.stop('SIGTERM')).toBe(0);
  // The server it stops itself ends pg-boss's last connections: no outage to warn of.
  expect(daemon!.output()).not.toMatch(/unreachable/);
  const cluster = readFileSync(path.join(dir, '.mirrorstate', 'location'), 'utf8').trim();
  expect(() => statSync(path.join(cluster, 'postmaster.pid'))).toThrow(); // a clean shutdown removes it
  daemon = await startDaemon({ databaseUrl: undefined, cwd: dir });
  expect(daemon.output()).not.toContain('initialising');
  expect(await (await fetch(`${daemon.url}/metrics`)).text()).toContain('peerdb_mirror_status{mirror="quickstart",status="running"} 1');
  expect(await daemon.stop('SIGTERM')).toBe(0);
  daemon = undefined;
});

it('a start-up failure of the embedded server ends in one line that says what to do, never a stack', async () => {
  // A cluster directory initdb must refuse: not empty, and no cluster in it.
  const project = path.join(dir, 'broken');
  const cluster = path.join(project, 'cluster');
  mkdirSync(path.join(project, '.mirrorstate'), { recursive: true });
  mkdirSync(cluster);
  writeFileSync(path.join(cluster, 'stray-file'), 'not a cluster');
  writeFileSync(path.join(project, '.mirrorstate', 'location'), `${cluster}\n`);
  const failed = await run(['run'], project);
  expect(failed.code).toBe(1);
  const lines = failed.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^mirrorstate: could not initialise the embedded PostgreSQL in ${cluster}: initdb exited with 1: .*Remove ${cluster}`));
  expect(failed.stderr + failed.stdout).not.toMatch(/\n\s+at |"stack"/);
});

it('deleting ./.mirrorstate/ starts afresh: the next run removes the cluster it left under /var/lib/mirrorstate', async () => {
  const old = readFileSync(path.join(dir, '.mirrorstate', 'location'), 'utf8').trim();
  const oldHome = path.dirname(old);
  expect(path.dirname(oldHome)).toBe(SHARED_HOME); // a private directory as root: the cluster lives there
  // Beside it, what must stay: a cluster its data directory still points at, and a home with no owner.
  const kept = path.join(dir, 'kept');
  const keptHome = path.join(SHARED_HOME, 'ab12cd34ef56');
  const ownerless = path.join(SHARED_HOME, '0123456789ab');
  mkdirSync(path.join(kept, '.mirrorstate'), { recursive: true });
  mkdirSync(path.join(keptHome, 'pgdata'), { recursive: true });
  mkdirSync(ownerless, { recursive: true });
  writeFileSync(path.join(keptHome, 'owner'), `${path.join(kept, '.mirrorstate')}\n`);
  writeFileSync(path.join(kept, '.mirrorstate', 'location'), `${path.join(keptHome, 'pgdata')}\n`);
  try {
    rmSync(path.join(dir, '.mirrorstate'), { recursive: true });
    expect(existsSync(old)).toBe(true); // what the README's "delete it" used to leave behind

    daemon = await startDaemon({ databaseUrl: undefined, cwd: dir });
    expect(daemon.output()).toContain('initialising'); // afresh: a new cluster, not the old one
    expect(daemon.output()).toMatch(/"msg":"removed an embedded cluster its data directory no longer points at"/);
    expect(existsSync(oldHome)).toBe(false);
    const fresh = readFileSync(path.join(dir, '.mirrorstate', 'location'), 'utf8').trim();
    expect(fresh).not.toBe(old);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(keptHome)).toBe(true);
    expect(existsSync(ownerless)).toBe(true);
    expect(await daemon.stop('SIGTERM')).toBe(0);
    daemon = undefined;
  } finally {
    rmSync(keptHome, { recursive: true, force: true });
    rmSync(ownerless, { recursive: true, force: true });
  }
});
