/**
 * The embedded PostgreSQL as a child process: initdb once, start on a free port, wait until it
 * takes connections, stop with a fast shutdown.
 *
 * Every way this can fail — a binary that cannot be executed, initdb refusing a directory, the
 * server exiting early, a second daemon on the same data — becomes one EmbeddedStartError whose
 * message carries the server's last log lines and what to do; no child-process error goes unheard.
 *
 * Lock-down: the cluster takes no one but the daemon's own user. Its superuser's password is random,
 * made at initdb and kept in PASSWORD_FILE inside the cluster's directory (0600, read by the daemon
 * and the CLI as the data directory's owner, or root); the server listens on 127.0.0.1 only, opens
 * no Unix socket, and its pg_hba.conf, rewritten at every start, asks every login for its role's
 * password (SCRAM) and rejects everything else. A cluster made by an earlier build (fixed password `postgres`) is taken
 * over in place at its next start: a new random password replaces the fixed one.
 *
 * The server runs in a process group of its own, so a Ctrl-C at the terminal reaches the daemon
 * only: the daemon commits the batches in hand and stops this server last (see main.ts). Should the
 * daemon exit without stopping it, an exit hook still asks it to shut down.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { sqlState } from '../db/sqlstate.js';
import type { Logger } from '../log.js';
import { EmbeddedStartError } from './error.js';
import type { Binaries, RunAs } from './placement.js';

export const FIRST_PORT = 54329;
/** The cluster's superuser: the daemon's own and only login. */
export const USER = 'postgres';
/** What clusters made by earlier builds had as the superuser's password: replaced at their next start. */
const LEGACY_PASSWORD = 'postgres';
/** The superuser's password, in the cluster's directory. */
export const PASSWORD_FILE = 'mirrorstate.password';
/**
 * Rewritten at every start: TCP from this machine with a role's password (SCRAM), nothing else. The
 * only role with a password is the superuser, whose password only the data directory's owner can
 * read; roles its owner creates with a password (a read-only role for Grafana) may log in too.
 */
const HBA = [
  '# Written by mirrorstate at every start (src/embedded/server.ts): from this machine over TCP, with',
  '# a role\'s password (the superuser\'s is in mirrorstate.password). Nothing else matches: rejected.',
  'host all all 127.0.0.1/32 scram-sha-256',
  '',
].join('\n');
const READY_TIMEOUT_MS = 60_000;
const READY_POLL_MS = 100;
const STOP_TIMEOUT_MS = 30_000;
/** Starts retried when another process took the free port between our check and the bind. */
const PORT_ATTEMPTS = 5;
const LOG_TAIL_LINES = 12;

const ADVICE = 'set DATABASE_URL to use a PostgreSQL of your own, or run with --log-level debug for the server log';

export interface ServerOptions {
  binaries: Binaries;
  databaseDir: string;
  runAs: RunAs | undefined;
  logger: Logger;
}

/** The last lines a child wrote, for the error message when it fails. */
class Tail {
  private lines: string[] = [];
  push(text: string): void {
    for (const line of text.split('\n')) if (line.trim() !== '') this.lines.push(line.trim());
    this.lines = this.lines.slice(-LOG_TAIL_LINES);
  }
  toString(): string {
    return this.lines.length > 0 ? this.lines.join(' | ') : 'no output';
  }
}

export class EmbeddedServer {
  private child: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;
  private stopping: Promise<void> | undefined;
  private readonly killOnExit = () => this.child?.kill('SIGINT');
  port = 0;
  /** The superuser's password (PASSWORD_FILE), known once start() has read or made it. */
  password = '';

  constructor(private readonly options: ServerOptions) {}

  /** Initialises the cluster when new, starts the server, and resolves once it takes connections. */
  async start(): Promise<void> {
    const { databaseDir, runAs } = this.options;
    assertNotRunning(databaseDir);
    if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await this.initialise();
    this.password = readOrMakePassword(databaseDir);
    writeFileSync(path.join(databaseDir, 'pg_hba.conf'), HBA, { mode: 0o600 });
    if (runAs) chownSync(path.join(databaseDir, 'pg_hba.conf'), runAs.uid, runAs.gid);
    for (let attempt = 1, port = FIRST_PORT; ; attempt++, port++) {
      port = await freePort(port);
      try {
        await this.launch(port);
        return;
      } catch (err) {
        // Lost a race for the port: try the next one. Anything else is the answer.
        if (attempt >= PORT_ATTEMPTS || (await isPortFree(port))) throw err;
      }
    }
  }

  private async initialise(): Promise<void> {
    const { binaries, databaseDir, runAs, logger } = this.options;
    logger.info({ databaseDir }, 'initialising embedded PostgreSQL');
    mkdirSync(databaseDir, { recursive: true, mode: 0o700 });
    // initdb reads the password from a file; as root it runs as the postgres user, who must read it.
    // It goes into the cluster's directory once initdb has made it (initdb wants it empty).
    const password = randomBytes(24).toString('base64url');
    const passwordFile = path.join(tmpdir(), `mirrorstate-pw-${randomBytes(6).toString('hex')}`);
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    try {
      if (runAs) {
        chownSync(databaseDir, runAs.uid, runAs.gid);
        chownSync(passwordFile, runAs.uid, runAs.gid);
      }
      const args = [`--pgdata=${databaseDir}`, '--auth=scram-sha-256', `--username=${USER}`, `--pwfile=${passwordFile}`];
      const tail = new Tail();
      const child = this.spawn(binaries.initdb, [...args, '--encoding=UTF8', '--locale=C'], tail);
      const [code, signal] = (await exitOf(child, 'initdb')) as [number | null, string | null];
      if (code !== 0) {
        throw new EmbeddedStartError(
          `could not initialise the embedded PostgreSQL in ${databaseDir}: initdb exited with ${code ?? signal}: ${tail}. ` +
            `Remove ${databaseDir} if it holds nothing you need (an interrupted first start), set MIRRORSTATE_DATA_DIR ` +
            `(--data-dir) to another directory, or ${ADVICE}`,
        );
      }
      writeFileSync(path.join(databaseDir, PASSWORD_FILE), `${password}\n`, { mode: 0o600, flag: 'wx' });
    } finally {
      rmSync(passwordFile, { force: true });
    }
  }

  private async launch(port: number): Promise<void> {
    const { binaries, databaseDir } = this.options;
    const tail = new Tail();
    const args = ['-D', databaseDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='];
    const child = this.spawn(binaries.postgres, args, tail, true);
    const exited = exitOf(child, 'postgres');
    exited.catch(() => undefined); // awaited below and in stop(); never an unhandled rejection
    this.child = child;
    this.exited = exited;
    process.on('exit', this.killOnExit);
    const ended = exited.then(
      ([code, signal]) => {
        if (this.port !== 0) return; // exited after it was ready: stop(), not a failed start
        throw new EmbeddedStartError(
          `the embedded PostgreSQL in ${databaseDir} exited at start (${String(code ?? signal)}): ${tail}. ${ADVICE}`,
        );
      },
      (err: unknown) => {
        throw err;
      },
    );
    ended.catch(() => undefined); // the race below hears it; a later exit is stop()'s business
    try {
      await Promise.race([ended, waitUntilReady(port, this.password, tail, databaseDir, this.options.logger)]);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.port = port;
  }

  private spawn(binary: string, args: string[], tail: Tail, detached = false): ChildProcess {
    const { runAs, logger } = this.options;
    const child = spawn(binary, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    const log = logger.child({ component: 'embedded-postgres' });
    const forward = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      tail.push(text);
      log.debug(text.trim());
    };
    child.stdout?.on('data', forward);
    child.stderr?.on('data', forward);
    return child;
  }

  /** Fast shutdown (SIGINT: roll back sessions, checkpoint, exit). Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const { child, exited } = this;
    process.off('exit', this.killOnExit);
    if (!child || !exited || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGQUIT'), STOP_TIMEOUT_MS);
    await exited.catch(() => undefined);
    clearTimeout(timer);
  }
}

/** The child's exit as `[code, signal]`; a spawn failure (EACCES, ENOENT) as an EmbeddedStartError. */
function exitOf(child: ChildProcess, what: string): Promise<[number | null, string | null]> {
  return new Promise((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new EmbeddedStartError(
          `could not run the embedded PostgreSQL's ${what} (${child.spawnfile}): ${err.code ?? err.message}. ` +
            `Reinstall with optional dependencies (npm ci), or ${ADVICE}`,
          { cause: err },
        ),
      ),
    );
    child.once('exit', (code, signal) => resolve([code, signal]));
  });
}

/**
 * The superuser's password from PASSWORD_FILE; a new random one written there (0600) when the
 * cluster has none: one made by an earlier build, whose fixed password waitUntilReady replaces.
 */
function readOrMakePassword(databaseDir: string): string {
  const file = path.join(databaseDir, PASSWORD_FILE);
  try {
    const password = readFileSync(file, 'utf8').trim();
    if (password !== '') return password;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new EmbeddedStartError(`cannot read the embedded PostgreSQL's password (${file}): ${(err as NodeJS.ErrnoException).code}. ${ADVICE}`);
    }
  }
  const password = randomBytes(24).toString('base64url');
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return password;
}

/** A client of the server's maintenance database; a connection cut off later is the caller's to see. */
function maintenanceClient(port: number, password: string): pg.Client {
  const client = new pg.Client({ host: '127.0.0.1', port, user: USER, password, database: 'postgres' });
  client.on('error', () => undefined);
  return client;
}

async function waitUntilReady(port: number, password: string, tail: Tail, databaseDir: string, logger: Logger): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    const client = maintenanceClient(port, password);
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      last = err;
      // 28P01: not our password. A cluster an earlier build made still has the fixed one: replace it.
      if (sqlState(err) === '28P01' && (await takeOver(port, password))) {
        logger.warn({ databaseDir }, 'embedded PostgreSQL made by an earlier build: its fixed superuser password is replaced by a random one');
        continue;
      }
      // 28xxx: the cluster does not take our credentials; waiting will not change that.
      if (sqlState(err)?.startsWith('28')) break;
    }
    await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
  }
  throw new EmbeddedStartError(
    `the embedded PostgreSQL in ${databaseDir} did not take connections on port ${port}: ` +
      `${(last as Error | undefined)?.message ?? 'no answer'}; server log: ${tail}. ${ADVICE}`,
  );
}

/** Logs in with the legacy fixed password and sets `password`; false when that login fails too. */
async function takeOver(port: number, password: string): Promise<boolean> {
  const client = maintenanceClient(port, LEGACY_PASSWORD);
  try {
    await client.connect();
  } catch {
    return false;
  }
  try {
    await client.query(`set password_encryption = 'scram-sha-256'`);
    // base64url: nothing in it needs quoting.
    await client.query(`alter role ${USER} password '${password}'`);
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates the daemon's database unless an earlier run did. */
export async function createDatabase(port: number, password: string, name: string): Promise<void> {
  const client = maintenanceClient(port, password);
  await client.connect();
  try {
    await client.query(`create database ${name}`);
  } catch (err) {
    if (sqlState(err) !== '42P04') throw err; // duplicate_database: made by an earlier run
  } finally {
    await client.end();
  }
}

/** A live postmaster on this cluster means another daemon owns it: say so instead of clashing. */
function assertNotRunning(databaseDir: string): void {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  if (!isPostgres(pid)) return; // stale: PostgreSQL removes it at start
  throw new EmbeddedStartError(
    `an embedded PostgreSQL (pid ${pid}) already runs on ${databaseDir}: another mirrorstate daemon is using this ` +
      `data directory. Stop that daemon first (or, if none runs any more, the server: kill -INT ${pid}), set ` +
      'MIRRORSTATE_DATA_DIR (--data-dir) to another directory, or set DATABASE_URL',
  );
}

export function isPostgres(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but is not ours to signal (run by another user).
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // A pid from a stale file may since belong to something else.
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
  } catch {
    return true; // no /proc: trust the signal check
  }
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePort(from: number): Promise<number> {
  let port = from;
  while (!(await isPortFree(port))) port++;
  return port;
}
