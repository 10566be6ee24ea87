/** The command line as an operator meets it: help, bad configuration, migrate races, publish, status, SIGTERM. */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../src/catalog/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { CLI, startDaemon, waitFor } from '../helpers/daemon.js';

const exec = promisify(execFile);

async function run(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('mirrorstate command line', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('cli');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('--help lists every setting with its variable and default', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    for (const text of ['--http-port', 'MIRRORSTATE_HTTP_PORT', 'default: 9477', 'MIRRORSTATE_JOURNAL_MAX_AGE', 'default: 7d', 'publish', 'migrate']) {
      expect(stdout).toContain(text);
    }
  });

  it('ends quietly when its reader stops early (`mirrorstate status | head`), as Unix tools do', async () => {
    const child = spawn(process.execPath, [CLI, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before the first line: every write meets EPIPE
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('stops at start on bad configuration, naming every bad setting and no secret', async () => {
    const { code, stderr } = await run(['run'], {
      DATABASE_URL: 'mysql://user:hunter2@host/db',
      MIRRORSTATE_HTTP_PORT: '99999',
      MIRRORSTATE_JOURNAL_MAX_AGE: 'a week',
    });
    expect(code).toBe(2);
    expect(stderr).toContain('DATABASE_URL / --database-url must be a postgres:// or postgresql:// URL');
    expect(stderr).toContain('MIRRORSTATE_HTTP_PORT / --http-port must be an integer from 0 to 65535, got "99999"');
    expect(stderr).toContain('MIRRORSTATE_JOURNAL_MAX_AGE / --journal-max-age must be a duration');
    expect(stderr).not.toContain('hunter2');
  });

  it('a flag wins over its variable', async () => {
    const { code, stderr } = await run(['run', '--http-port', 'x'], { MIRRORSTATE_HTTP_PORT: '1234' });
    expect(code).toBe(2);
    expect(stderr).toContain('got "x"');
  });

  it('two migrators at once on an empty database both succeed and apply each migration once', async () => {
    const results = await Promise.all([run(['migrate'], { DATABASE_URL: db.url }), run(['migrate'], { DATABASE_URL: db.url })]);
    expect(results.map((r) => r.code)).toEqual([0, 0]);
    const { rows } = await db.pool.query('select version, count(*)::int as n from mirrorstate.schema_migrations group by 1 order by 1');
    expect(rows).toEqual(loadMigrations().map((m) => ({ version: m.version, n: 1 })));
    const { rows: queues } = await db.pool.query(`select name from pgboss.queue where name like 'mirrorstate-updates%' order by name`);
    expect(queues.map((q) => q.name)).toEqual(['mirrorstate-updates', 'mirrorstate-updates-dlq']);
  });

  it('publish rejects an invalid update with the field at fault and exit code 2', async () => {
    const { code, stderr } = await run(['publish', '--mirror', 'm', '--status', 'sleeping'], { DATABASE_URL: db.url });
    expect(code).toBe(2);
    expect(stderr).toMatch(/status must be one of/);
  });

  it('publish → daemon → status, and SIGTERM exits 0', async () => {
    // Trust auth ignores the password, so the daemon runs with it: the logs must not show it.
    const withPassword = db.url.replace('postgres@', 'postgres:s3cr3t-pw@');
    const daemon = await startDaemon({ databaseUrl: withPassword });
    try {
      const published = await run(
        ['publish', '--mirror', 'orders "cdc"', '--status', 'STATUS_RUNNING', '--rows-synced', '42', '--observed-at', '2026-11-21T10:00:00.123456789+01:00'],
        { DATABASE_URL: db.url },
      );
      expect(published.code).toBe(0);
      await waitFor('the update to be applied', async () => (await db.pool.query('select 1 from mirrorstate.mirrors')).rowCount === 1);
      const status = await run(['status'], { DATABASE_URL: db.url });
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/orders "cdc"\s+running\s+2026-11-21T09:00:00\.123456Z/);
      const one = await run(['status', 'orders "cdc"'], { DATABASE_URL: db.url });
      expect(one.stdout).toMatch(/rows_synced\s+42/);
      expect(one.stdout).toMatch(/-\s+running\s+2026-11-21T09:00:00\.123456Z/);
      const missing = await run(['status', 'nope'], { DATABASE_URL: db.url });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe('mirrorstate status: no mirror named "nope" in the catalog (`mirrorstate status` lists them)\n');
    } finally {
      expect(await daemon.stop('SIGTERM')).toBe(0);
    }
    expect(daemon.output()).toMatch(/"msg":"stopped"/);
    expect(daemon.output()).toContain('postgres:***@');
    expect(daemon.output()).not.toContain('s3cr3t-pw');
  });
});
