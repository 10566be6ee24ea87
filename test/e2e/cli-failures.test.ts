/**
 * Every failure a person can cause at the command line, as the built CLI meets it: one line on
 * stderr saying what happened and what to do, the exit code docs/cli.md lists, no stack, no
 * password, and nothing made on disk — in particular no embedded cluster, which only `run` makes.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/failure.js';
import { SHARED_HOME } from '../../src/embedded/placement.js';
import { CLI } from '../helpers/daemon.js';
import { createTestDatabase, SERVER_URL, type TestDatabase } from '../helpers/db.js';

const exec = promisify(execFile);
const PASSWORD = 'hunter2-s3cret';
const ONE_SHOTS = [['status'], ['publish', '--mirror', 'm', '--status', 'running'], ['trim'], ['dlq', 'list'], ['migrate'], ['peerdb-sync']];

const dir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-cli-failures-'));
const baseEnv: NodeJS.ProcessEnv = { ...process.env, MIRRORSTATE_HTTP_PORT: '0', MIRRORSTATE_HTTP_HOST: '127.0.0.1' };
for (const name of Object.keys(baseEnv)) if (/^(DATABASE_URL|MIRRORSTATE_)/.test(name) && !/HTTP_(PORT|HOST)$/.test(name)) delete baseEnv[name];
// peerdb-sync needs its URL to get as far as the databases; it is never reached.
const PEERDB = { MIRRORSTATE_PEERDB_URL: `postgres://peerdb:${PASSWORD}@127.0.0.1:1/peerdb` };

/**
 * The clusters under SHARED_HOME that belong to a data directory in `dir`. (Other processes on the
 * machine may make clusters there meanwhile; only ours count.)
 */
function oursInSharedHome(): string[] {
  const names = existsSync(SHARED_HOME) ? readdirSync(SHARED_HOME) : [];
  return names.filter((name) => {
    try {
      return readFileSync(path.join(SHARED_HOME, name, 'owner'), 'utf8').startsWith(dir);
    } catch {
      return false;
    }
  });
}

function withUser(url: string, user: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = PASSWORD;
  return u.toString();
}

async function run(args: string[], env: Record<string, string> = {}) {
  return exec(process.execPath, [CLI, ...args], { cwd: dir, env: { ...baseEnv, ...env }, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
}

/** Runs the command and checks everything a failure must be; returns its one line. */
async function fails(args: string[], env: Record<string, string>, code: number, line: RegExp): Promise<string> {
  const r = await run(args, env);
  const what = `mirrorstate ${args.join(' ')}: ${r.stderr}`;
  expect(r.code, what).toBe(code);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, what).toHaveLength(1);
  expect(lines[0], what).toMatch(line);
  expect(lines[0], what).toMatch(/^mirrorstate( [a-z-]+)?: /);
  expect(r.stderr + r.stdout, what).not.toMatch(/^\s+at |"stack"/m);
  expect(r.stderr + r.stdout, what).not.toContain(PASSWORD);
  expect(readdirSync(dir), `${what}: made something where it ran (./.mirrorstate?)`).toEqual([]);
  expect(oursInSharedHome(), `${what}: made a cluster under ${SHARED_HOME}`).toEqual([]);
  return lines[0] as string;
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('where no daemon has run and no DATABASE_URL is set', () => {
  it.each(ONE_SHOTS)('%s makes no embedded cluster: it says there is no data here (exit 2)', async (...args) => {
    await fails(args, PEERDB, EXIT.usage, /no mirrorstate data here \(\.\/\.mirrorstate\) and no DATABASE_URL: start the daemon first \(`npm start`.*set DATABASE_URL/);
  });

  it('names MIRRORSTATE_DATA_DIR when that is where it looked', async () => {
    await fails(['status'], { MIRRORSTATE_DATA_DIR: 'elsewhere' }, EXIT.usage,
      new RegExp(`no mirrorstate data in ${path.join(dir, 'elsewhere')} \\(MIRRORSTATE_DATA_DIR / --data-dir\\)`));
  });
});

describe('a database that is not there', () => {
  const refused = { DATABASE_URL: `postgres://someone:${PASSWORD}@127.0.0.1:1/db` };

  it.each([...ONE_SHOTS, ['run']])('%s: nothing answers at its address (exit 1)', async (...args) => {
    await fails(args, { ...refused, ...PEERDB }, EXIT.failed,
      /cannot reach the database at 127\.0\.0\.1:1\/db \(ECONNREFUSED: connection refused: is PostgreSQL running there, on that port\?\); check DATABASE_URL \(--database-url\)$/);
  });

  it('names the queue database when that is the one away', async () => {
    await fails(['publish', '--mirror', 'm', '--status', 'running'], { DATABASE_URL: SERVER_URL, MIRRORSTATE_QUEUE_DATABASE_URL: refused.DATABASE_URL },
      EXIT.failed, /cannot reach the database at 127\.0\.0\.1:1\/db .*check MIRRORSTATE_QUEUE_DATABASE_URL \(--queue-database-url\)$/);
  });

  it.each([['status'], ['run']])('%s: the host name is unknown (exit 1)', async (...args) => {
    await fails(args, { DATABASE_URL: `postgres://u:${PASSWORD}@no-such-host.invalid/db` }, EXIT.failed,
      /cannot reach the database at no-such-host\.invalid:5432\/db \((ENOTFOUND|EAI_AGAIN): .*\); check DATABASE_URL/);
  });

  it.each([['status'], ['migrate'], ['run']])('%s: the server has no such database (exit 1)', async (...args) => {
    const url = new URL(SERVER_URL);
    url.pathname = '/no_such_database_here';
    await fails(args, { DATABASE_URL: url.toString() }, EXIT.failed,
      /there is no database "no_such_database_here" at \S+: create it \(createdb\), or check DATABASE_URL \(--database-url\)$/);
  });

  it.each([['status'], ['publish', '--mirror', 'm', '--status', 'running'], ['run']])('%s: the server refuses the login (exit 1)', async (...args) => {
    await fails(args, { DATABASE_URL: withUser(SERVER_URL, 'no_such_role') }, EXIT.failed,
      /the database at \S+ refused the login of "no_such_role" \(.*\); check the user and password in DATABASE_URL \(--database-url\)$/);
  });

  it('a URL whose port cannot be is called that, not "no URL" (exit 2)', async () => {
    await fails(['status'], { DATABASE_URL: `postgres://u:${PASSWORD}@db.example:99999/db` }, EXIT.usage,
      /^mirrorstate: invalid configuration: DATABASE_URL \/ --database-url has port 99999: a port is a number from 1 to 65535$/);
  });
});

describe('a database without the catalog or the queue', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('cli_failures');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it.each([['status'], ['status', 'some_mirror'], ['trim']])('%s says to run `mirrorstate migrate` (exit 1)', async (...args) => {
    await fails(args, { DATABASE_URL: db.url }, EXIT.failed,
      /the catalog \(schema "mirrorstate"\) is missing or incomplete in this database \(.*\): run `mirrorstate migrate` against this database \(or start the daemon/);
  });

  it.each([['publish', '--mirror', 'm', '--status', 'running'], ['dlq', 'list'], ['peerdb-sync']])('%s says to run `mirrorstate migrate`, and installs nothing (exit 1)', async (...args) => {
    await fails(args, { DATABASE_URL: db.url, ...PEERDB }, EXIT.failed,
      /the queue \(pg-boss schema "pgboss"\) is not set up in this database \(pg-boss is not installed\): run `mirrorstate migrate`/);
    // A producer never installs pg-boss: the command did not set the queue up behind the operator's back.
    const { rows } = await db.pool.query(`select nspname from pg_namespace where nspname in ('pgboss', 'mirrorstate')`);
    expect(rows).toEqual([]);
  });
});

describe('run', () => {
  let taken: Server;
  let port: number;
  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    port = (taken.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

  it('with its HTTP port taken stops before it makes or migrates anything, naming the port and its setting (exit 1)', async () => {
    // No DATABASE_URL: a run that got as far as the database would initdb ./.mirrorstate first.
    const line = await fails(['run'], { MIRRORSTATE_HTTP_PORT: String(port) }, EXIT.failed,
      new RegExp(`^mirrorstate: the HTTP port ${port} is already in use \\(127\\.0\\.0\\.1:${port}; another mirrorstate daemon\\?\\): .*MIRRORSTATE_HTTP_PORT / --http-port$`));
    expect(line).not.toContain('EADDRINUSE');
  });

  it('logs its failure to start as one fatal line too, without a stack', async () => {
    const r = await run(['run'], { MIRRORSTATE_HTTP_PORT: String(port) });
    const logged = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged).toEqual([expect.objectContaining({ level: 60, msg: 'could not start', reason: expect.stringContaining(`port ${port}`) })]);
  });
});

describe('usage', () => {
  it.each([
    [['frobnicate'], /^mirrorstate: unknown command "frobnicate"; see mirrorstate --help$/],
    [['status', '--no-such-flag'], /^mirrorstate: Unknown option '--no-such-flag'.*; see mirrorstate --help$/],
    [['status', '--json'], /^mirrorstate: --json belongs to the dlq command; see mirrorstate --help$/],
    [['dlq', 'frob'], /^mirrorstate dlq: .*; see mirrorstate --help$/],
    [['publish', '--mirror', 'm', '--status', 'sleeping'], /^mirrorstate publish: 1 invalid update, nothing was published: \[0\] status must be one of/],
    [['publish', '--mirror', 'm', '--status', 'running', '--seq', 'x'], /^mirrorstate publish: --seq must be a number, got "x"$/],
  ])('%j is one line and exit 2', async (args, line) => {
    // A database that is there, so that only the usage can be wrong.
    await fails(args, { DATABASE_URL: SERVER_URL }, EXIT.usage, line);
  });

  it('every bad setting at once, on one line (exit 2)', async () => {
    await fails(['run'], { DATABASE_URL: `mysql://u:${PASSWORD}@h/db`, MIRRORSTATE_BATCH_SIZE: '0', MIRRORSTATE_JOURNAL_MAX_AGE: 'a week' }, EXIT.usage,
      /^mirrorstate: invalid configuration: DATABASE_URL .*; MIRRORSTATE_BATCH_SIZE .*; MIRRORSTATE_JOURNAL_MAX_AGE /);
  });
});
