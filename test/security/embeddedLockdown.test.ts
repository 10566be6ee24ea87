/**
 * The embedded PostgreSQL takes no one but the daemon's own user (docs/security.md): another local
 * user (`nobody`) cannot log in over TCP with the password earlier builds fixed, without one, or as
 * itself, and there is no Unix socket to try. A cluster made by an earlier build (initdb exactly as
 * it ran it: `--auth=password`, superuser password `postgres`) is taken over in place at its next
 * start. Needs root (runuser), as CI runs.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { place } from '../../src/embedded/placement.js';
import { PASSWORD_FILE } from '../../src/embedded/server.js';
import { CLI, type DaemonProcess, startDaemon } from '../helpers/daemon.js';
import { removeEmbeddedData } from '../helpers/embedded.js';

const exec = promisify(execFile);
const asRoot = process.getuid?.() === 0;
const PSQL = ['/usr/bin/psql', '/usr/lib/postgresql/15/bin/psql'].find((p) => spawnSync(p, ['--version']).status === 0);
const dirs: string[] = [];
let daemon: DaemonProcess | undefined;

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  for (const dir of dirs) {
    removeEmbeddedData(path.join(dir, '.mirrorstate'));
    rmSync(dir, { recursive: true, force: true });
  }
});

function project(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-lockdown-'));
  dirs.push(dir);
  return dir;
}

/** psql run as `nobody`: the answer another local user gets. */
function asNobody(port: number, user: string, password: string | undefined): { status: number | null; output: string } {
  const env = password === undefined ? ['PGPASSWORD='] : [`PGPASSWORD=${password}`];
  const result = spawnSync(
    'runuser',
    ['-u', 'nobody', '--', 'env', ...env, 'PGCONNECT_TIMEOUT=5', PSQL!, '-w', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', 'postgres', '-Atc', 'select rolsuper from pg_roles where rolname = current_user'],
    { encoding: 'utf8', cwd: '/' },
  );
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function clusterOf(dir: string): string {
  try {
    return readFileSync(path.join(dir, '.mirrorstate', 'location'), 'utf8').trim();
  } catch {
    return path.join(dir, '.mirrorstate', 'pgdata');
  }
}

function portOf(d: DaemonProcess): number {
  return Number(/DATABASE_URL=postgres:\/\/\S+@127\.0\.0\.1:(\d+)\//.exec(d.output())?.[1]);
}

function expectLockedOut(port: number): void {
  // The previous build's fixed password, none at all, and nobody's own name: all refused.
  for (const [user, password] of [['postgres', 'postgres'], ['postgres', undefined], ['nobody', undefined], ['nobody', 'postgres']] as const) {
    const answer = asNobody(port, user, password);
    expect(answer.status, `${user} / ${password ?? 'no password'}: ${answer.output}`).not.toBe(0);
    expect(answer.output).toMatch(/password authentication failed|no password supplied|no pg_hba\.conf entry/);
    expect(answer.output).not.toMatch(/^t$/m);
  }
}

describe.skipIf(!asRoot || PSQL === undefined)('the embedded PostgreSQL, locked down', () => {
  it('takes no other local user, keeps its password 0600, and never prints it', async () => {
    const dir = project();
    daemon = await startDaemon({ databaseUrl: undefined, cwd: dir });
    const port = portOf(daemon);
    expect(port).toBeGreaterThan(0);
    const cluster = clusterOf(dir);
    const passwordFile = path.join(cluster, PASSWORD_FILE);
    expect(statSync(passwordFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, '.mirrorstate', 'url')).mode & 0o777).toBe(0o600);
    const password = readFileSync(passwordFile, 'utf8').trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(daemon.output()).not.toContain(password);
    expect(readFileSync(path.join(cluster, 'pg_hba.conf'), 'utf8')).toMatch(/^host all all 127\.0\.0\.1\/32 scram-sha-256$/m);

    expectLockedOut(port);
    // Even with the password, only from the daemon's user: nobody cannot read it.
    const read = spawnSync('runuser', ['-u', 'nobody', '--', 'cat', passwordFile], { encoding: 'utf8' });
    expect(read.status).not.toBe(0);
    // No Unix socket anywhere in the cluster's directory or /tmp for this port.
    expect(readdirSync(cluster).filter((f) => f.startsWith('.s.PGSQL'))).toEqual([]);
    expect(readdirSync('/tmp').filter((f) => f === `.s.PGSQL.${port}`)).toEqual([]);

    // The CLI still finds and uses it with nothing configured.
    const env: NodeJS.ProcessEnv = { ...process.env, MIRRORSTATE_LOG_LEVEL: 'warn' };
    delete env.DATABASE_URL;
    await exec(process.execPath, [CLI, 'publish', '--mirror', 'locked', '--status', 'running'], { cwd: dir, env });
    const { stdout } = await exec(process.execPath, [CLI, 'status'], { cwd: dir, env });
    expect(stdout).not.toContain(password);
    expect(await daemon.stop()).toBe(0);
    daemon = undefined;
  });

  it('takes over a cluster an earlier build made (password postgres) at its next start', async () => {
    const dir = project();
    // initdb exactly as the previous build ran it, in the place it would have chosen.
    const placement = await place(path.join(dir, '.mirrorstate'));
    const pwfile = path.join(tmpdir(), `ms-legacy-pw-${process.pid}`);
    writeFileSync(pwfile, 'postgres\n', { mode: 0o600 });
    const { runAs } = placement;
    if (runAs) chownSync(pwfile, runAs.uid, runAs.gid);
    mkdirSync(placement.databaseDir, { recursive: true, mode: 0o700 });
    if (runAs) chownSync(placement.databaseDir, runAs.uid, runAs.gid);
    const args = [`--pgdata=${placement.databaseDir}`, '--auth=password', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C'];
    const initdb = spawnSync(placement.binaries.initdb, args, { encoding: 'utf8', ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) });
    rmSync(pwfile, { force: true });
    expect(initdb.status, initdb.stderr).toBe(0);
    expect(readFileSync(path.join(placement.databaseDir, 'pg_hba.conf'), 'utf8')).toMatch(/^host\s+all\s+all\s+127\.0\.0\.1\/32\s+password/m);

    daemon = await startDaemon({ databaseUrl: undefined, cwd: dir });
    expect(daemon.output()).toContain('its fixed superuser password is replaced by a random one');
    expect(daemon.output()).not.toContain('initialising');
    const port = portOf(daemon);
    expectLockedOut(port);
    const password = readFileSync(path.join(placement.databaseDir, PASSWORD_FILE), 'utf8').trim();
    expect(password).not.toBe('postgres');
    expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);
    expect(await daemon.stop()).toBe(0);

    // The next start finds its password and has nothing to take over.
    daemon = await startDaemon({ databaseUrl: undefined, cwd: dir });
    expect(daemon.output()).not.toContain('fixed superuser password');
    expectLockedOut(portOf(daemon));
    expect(await daemon.stop()).toBe(0);
    daemon = undefined;
  });
});
