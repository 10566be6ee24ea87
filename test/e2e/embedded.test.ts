/**
 * The README's quick start: without DATABASE_URL the daemon starts a real embedded PostgreSQL under
 * ./.mirrorstate/, prints its URL, and the one-shot commands find it there.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';

const exec = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-quickstart-'));
// A project directory as a checkout leaves it (mkdtemp makes it 0700).
chmodSync(dir, 0o755);
const asRoot = process.getuid?.() === 0;
let daemon: DaemonProcess | undefined;

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

it.skipIf(!asRoot)('as root, names the setting when the postgres user cannot reach the data directory', async () => {
  const closed = path.join(dir, 'closed');
  mkdirSync(path.join(closed, 'project'), { recursive: true });
  chmodSync(closed, 0o700);
  const env: NodeJS.ProcessEnv = { ...process.env, MIRRORSTATE_HTTP_PORT: '0' };
  delete env.DATABASE_URL;
  const failed = await exec(process.execPath, [CLI, 'run'], { cwd: path.join(closed, 'project'), env }).then(
    () => ({ code: 0, stdout: '' }),
    (err: { code: number; stdout: string }) => err,
  );
  expect(failed.code).toBe(1);
  expect(failed.stdout).toContain(`because ${closed} is not searchable by other users: set MIRRORSTATE_DATA_DIR`);
});

it('runs on an embedded PostgreSQL when no DATABASE_URL is given', async () => {
  daemon = await startDaemon({ databaseUrl: undefined, cwd: dir });
  expect(daemon.output()).toMatch(/embedded PostgreSQL running, DATABASE_URL=postgres:\/\/\S+@127\.0\.0\.1:\d+\/mirrorstate/);
  expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);

  const env = { ...process.env };
  delete env.DATABASE_URL;
  await exec(process.execPath, [CLI, 'publish', '--mirror', 'quickstart', '--status', 'running'], { cwd: dir, env });
  await waitFor('the update in the embedded catalog', async () => {
    const { stdout } = await exec(process.execPath, [CLI, 'status'], { cwd: dir, env });
    return /quickstart\s+running/.test(stdout);
  }, 30_000, 200);
  expect(await (await fetch(`${daemon.url}/metrics`)).text()).toContain('peerdb_mirror_status{mirror="quickstart",status="running"} 1');

  expect(await daemon.stop('SIGTERM')).toBe(0);
  daemon = undefined;
});
