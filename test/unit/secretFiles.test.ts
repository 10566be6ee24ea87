/** Secrets from files (`*_FILE` / `--*-file`): what a mounted Kubernetes secret gives the daemon. */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, helpText, loadConfig, SETTINGS, settingFlags } from '../../src/config.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ms-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function secretFile(name: string, content: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('secrets from files', () => {
  it.each([
    ['DATABASE_URL_FILE', 'database-url-file', 'databaseUrl', 'postgres://u:s3cret@db:5432/catalog'],
    ['MIRRORSTATE_QUEUE_DATABASE_URL_FILE', 'queue-database-url-file', 'queueDatabaseUrl', 'postgres://u:s3cret@q/queue'],
    ['MIRRORSTATE_PEERDB_URL_FILE', 'peerdb-url-file', 'peerdbUrl', 'postgresql://ro:s3cret@peerdb/peerdb'],
    ['MIRRORSTATE_INGEST_TOKEN_FILE', 'ingest-token-file', 'ingestToken', 'tok-s3cret'],
  ] as const)('%s (and --%s) reads the secret, one trailing newline dropped', (env, flag, key, secret) => {
    const file = secretFile(`${key}-env`, `${secret}\n`);
    expect(loadConfig({ [env]: file })[key]).toBe(secret);
    expect(loadConfig({}, { [flag]: file })[key]).toBe(secret);
    // Only one newline goes: a secret that truly ends in whitespace keeps the rest.
    expect(loadConfig({ [env]: secretFile(`${key}-crlf`, `${secret}\r\n`) })[key]).toBe(secret);
    expect(loadConfig({ [env]: secretFile(`${key}-none`, secret) })[key]).toBe(secret);
  });

  it('keeps a second trailing newline, as the content says', () => {
    expect(loadConfig({ MIRRORSTATE_INGEST_TOKEN_FILE: secretFile('two-newlines', 'tok\n\n') }).ingestToken).toBe('tok\n');
  });

  it('refuses both forms of one secret, naming both, whichever way each is given', () => {
    const file = secretFile('both', 'postgres://u:s3cret@db/x\n');
    for (const [env, flags] of [
      [{ DATABASE_URL: 'postgres://a@b/c', DATABASE_URL_FILE: file }, {}],
      [{ DATABASE_URL_FILE: file }, { 'database-url': 'postgres://a@b/c' }],
      [{ DATABASE_URL: 'postgres://a@b/c' }, { 'database-url-file': file }],
    ] as const) {
      const problems = problemsOf(() => loadConfig(env, flags));
      expect(problems).toEqual([
        'DATABASE_URL / --database-url and DATABASE_URL_FILE / --database-url-file are both set: give the secret one way only',
      ]);
    }
  });

  it('an unreadable file is one line naming the setting and the path, never the content', () => {
    const missing = path.join(dir, 'missing');
    const unreadable = secretFile('unreadable', 'postgres://u:hunter2@db/x\n');
    chmodSync(unreadable, 0o000);
    const asRoot = process.getuid?.() === 0; // root reads a 0000 file: only the missing one fails then
    const problems = problemsOf(() =>
      loadConfig({ MIRRORSTATE_PEERDB_URL_FILE: missing, DATABASE_URL_FILE: unreadable, MIRRORSTATE_INGEST_TOKEN_FILE: dir }),
    );
    expect(problems).toContain(`MIRRORSTATE_PEERDB_URL_FILE / --peerdb-url-file (${missing}) cannot be read: ENOENT`);
    expect(problems).toContain(`MIRRORSTATE_INGEST_TOKEN_FILE / --ingest-token-file (${dir}) cannot be read: EISDIR`);
    if (!asRoot) expect(problems).toContain(`DATABASE_URL_FILE / --database-url-file (${unreadable}) cannot be read: EACCES`);
    for (const p of problems) expect(p).not.toMatch(/\n/);
    expect(problems.join(' ')).not.toContain('hunter2');
  });

  it("a file's bad content is reported under the file's name, without echoing the content", () => {
    const file = secretFile('mysql', 'mysql://u:hunter2@db/x\n');
    const problems = problemsOf(() => loadConfig({ DATABASE_URL_FILE: file }));
    expect(problems).toEqual([`DATABASE_URL_FILE / --database-url-file (${file}) must be a postgres:// or postgresql:// URL`]);
    const empty = secretFile('empty', '\n');
    expect(problemsOf(() => loadConfig({ MIRRORSTATE_INGEST_TOKEN_FILE: empty }))).toEqual([
      `MIRRORSTATE_INGEST_TOKEN_FILE / --ingest-token-file (${empty}) must not be empty`,
    ]);
  });

  it('only the four secrets have a file form, and --help lists each', () => {
    // A file form is a flag that a setting of its own does not declare (--web-config-file is a
    // setting whose value names a file, not the file form of a secret).
    const declared = new Set(SETTINGS.map((s) => s.flag));
    const fileForms = settingFlags().filter((f) => !declared.has(f));
    expect(fileForms.sort()).toEqual(['database-url-file', 'ingest-token-file', 'peerdb-url-file', 'queue-database-url-file']);
    for (const env of ['DATABASE_URL_FILE', 'MIRRORSTATE_QUEUE_DATABASE_URL_FILE', 'MIRRORSTATE_PEERDB_URL_FILE', 'MIRRORSTATE_INGEST_TOKEN_FILE']) {
      expect(helpText()).toContain(env);
    }
  });
});
