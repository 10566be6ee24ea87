/**
 * Applies `migrations/NNNN_<what>.sql` in order. Each file runs in its own transaction with the
 * search path set to the catalog schema, and is recorded in `<schema>.schema_migrations`. The
 * whole run holds a session advisory lock keyed on the schema, so replicas starting at once take
 * turns: the first applies, the others find nothing left to do.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { quoteIdent } from './sql.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => MIGRATION_FILE.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 4)),
      name: file,
      sql: readFileSync(path.join(dir, file), 'utf8'),
    }));
}

/**
 * Returns the migrations this call applied (none when another replica got there first).
 * `statementTimeoutMs` replaces the connection's statement timeout while they run (0 = none): the
 * wait for another replica's lock and a migration rewriting a big catalog are not stuck statements.
 */
export async function migrate(pool: Pool, schema: string, logger: Logger, dir?: string, statementTimeoutMs = 0): Promise<Migration[]> {
  const migrations = loadMigrations(dir);
  const client = await pool.connect();
  const applied: Migration[] = [];
  const s = quoteIdent(schema);
  let cleanup = () => {};
  try {
    await client.query(`select set_config('statement_timeout', $1::text, false)`, [String(statementTimeoutMs)]);
    await client.query(`select pg_advisory_lock(hashtextextended('mirrorstate.migrate:' || $1::text, 0))`, [schema]);
    await client.query(`create schema if not exists ${s}`);
    await client.query(
      `create table if not exists ${s}.schema_migrations (
         version integer primary key, name text not null, applied_at timestamptz not null default now())`,
    );
    const { rows } = await client.query<{ version: number }>(`select version from ${s}.schema_migrations`);
    const done = new Set(rows.map((r) => r.version));
    const pending = migrations.filter((m) => !done.has(m.version));
    // A long migration reports its progress with `raise notice` (a backfill's chunks): logged as it goes.
    let running = '';
    const onNotice = (notice: { message?: string }) => logger.info({ migration: running, progress: notice.message }, 'migration progress');
    client.on('notice', onNotice);
    cleanup = () => client.off('notice', onNotice);
    for (const [i, migration] of pending.entries()) {
      const started = Date.now();
      running = migration.name;
      logger.info({ migration: migration.name, step: i + 1, of: pending.length }, 'applying migration');
      await client.query('begin');
      try {
        await client.query(`set local search_path to ${s}, public`);
        await client.query(migration.sql);
        await client.query(`insert into ${s}.schema_migrations (version, name) values ($1, $2)`, [
          migration.version,
          migration.name,
        ]);
        await client.query('commit');
      } catch (cause) {
        await client.query('rollback').catch(() => undefined);
        throw new Error(`migration ${migration.name} failed; the catalog is left at the previous version`, { cause });
      }
      logger.info({ migration: migration.name, ms: Date.now() - started }, 'applied migration');
      applied.push(migration);
    }
    return applied;
  } finally {
    cleanup();
    await client.query(`select pg_advisory_unlock_all()`).catch(() => undefined);
    // Back to the connection's own limit (its startup setting) before the pool hands it out again.
    await client.query('reset statement_timeout').catch(() => undefined);
    client.release();
  }
}

/** The highest migration applied, or 0 on an empty catalog: what /readyz compares with the files. */
export async function appliedVersion(pool: Pool, schema: string): Promise<number> {
  const { rows } = await pool.query<{ version: number | null }>(
    `select max(version) as version from ${quoteIdent(schema)}.schema_migrations`,
  ).catch((err: { code?: string }) => {
    if (err.code === '42P01') return { rows: [{ version: 0 }] }; // undefined_table: never migrated
    throw err;
  });
  return rows[0]?.version ?? 0;
}

export function latestVersion(dir?: string): number {
  return loadMigrations(dir).at(-1)?.version ?? 0;
}
