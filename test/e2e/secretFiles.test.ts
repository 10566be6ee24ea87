/** The daemon's command line reading its secrets from files, as a Kubernetes secret volume mounts them. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../src/catalog/migrate.js';
import { CLI } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const exec = promisify(execFile);

async function run(args: string[], env: Record<string, string>) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'DATABASE_URL'));
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { env: { ...clean, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('secrets from files, end to end', () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase('secretfiles');
    dir = mkdtempSync(path.join(tmpdir(), 'ms-secretfile-'));
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('migrate reaches the catalog named only by DATABASE_URL_FILE', async () => {
    const file = path.join(dir, 'database-url');
    writeFileSync(file, `${db.url}\n`, { mode: 0o600 });
    const { code, stderr } = await run(['migrate'], { DATABASE_URL_FILE: file, MIRRORSTATE_LOG_LEVEL: 'warn' });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const { rows } = await db.pool.query<{ version: number }>('select max(version) as version from mirrorstate.schema_migrations');
    expect(rows[0]?.version).toBe(loadMigrations().at(-1)?.version);
  });

  it('stops at start when a secret file cannot be read or both forms are given, naming setting and path', async () => {
    const missing = path.join(dir, 'no-such-token');
    const urlFile = path.join(dir, 'url-with-secret');
    writeFileSync(urlFile, 'postgres://u:hunter2@127.0.0.1:1/x\n', { mode: 0o600 });
    const { code, stderr } = await run(['run'], {
      MIRRORSTATE_INGEST_TOKEN_FILE: missing,
      DATABASE_URL_FILE: urlFile,
      DATABASE_URL: 'postgres://u:hunter3@127.0.0.1:1/x',
    });
    expect(code).toBe(2);
    expect(stderr).toContain(`MIRRORSTATE_INGEST_TOKEN_FILE / --ingest-token-file (${missing}) cannot be read: ENOENT`);
    expect(stderr).toContain('DATABASE_URL / --database-url and DATABASE_URL_FILE / --database-url-file are both set');
    expect(stderr).not.toMatch(/hunter[23]/);
  });
});
