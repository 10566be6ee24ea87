/**
 * A catalog as the build before a migration left it, for the tests of that migration on data the
 * previous build wrote: its schema (migrateBefore), and its updates (writeAsPreviousBuild), plain
 * SQL on the columns every earlier migration has (the current batch writer also writes the columns
 * a newer migration adds, so it cannot fill an older catalog).
 * Each update is applied in order, newer than the last: its journal row, its transition when the
 * status changes, and the mirror's row with the journal metadata kept exact.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { migrate, MIGRATIONS_DIR } from '../../src/catalog/migrate.js';
import { createLogger } from '../../src/log.js';

/** Migrates `schema` as the build before migration `version` did: every migration before it, none from it on. */
export async function migrateBefore(pool: pg.Pool, schema: string, version: number): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-migrations-'));
  try {
    for (const file of readdirSync(MIGRATIONS_DIR).filter((f) => /^\d{4}_/.test(f) && Number(f.slice(0, 4)) < version)) {
      cpSync(path.join(MIGRATIONS_DIR, file), path.join(dir, file));
    }
    await migrate(pool, schema, createLogger('silent'), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface PreviousUpdate {
  mirror: string;
  status: string;
  observedAt: string;
  rowsSynced?: number;
}

export async function writeAsPreviousBuild(pool: pg.Pool, schema: string, updates: PreviousUpdate[]): Promise<void> {
  const s = `"${schema}"`;
  for (const u of updates) {
    const client = await pool.connect();
    try {
      await client.query('begin');
      const { rows: [row] } = await client.query<{ status: string }>(`select status from ${s}.mirrors where mirror = $1 for update`, [u.mirror]);
      const changed = row?.status !== u.status;
      await client.query(
        `insert into ${s}.journal (mirror, observed_at, seq, status, applied, payload) values ($1, $2, 0, $3, true, $4)`,
        [u.mirror, u.observedAt, u.status, JSON.stringify(u)],
      );
      if (changed) {
        await client.query(`insert into ${s}.transitions (mirror, from_status, to_status, at, seq) values ($1, $2, $3, $4, 0)`,
          [u.mirror, row?.status ?? null, u.status, u.observedAt]);
      }
      await client.query(
        `insert into ${s}.mirrors as m (mirror, status, status_since, observed_at, seq, rows_synced, transitions_total, journal_length, journal_oldest_at)
         values ($1, $2, $3, $3, 0, $4, 1, 1, $3)
         on conflict (mirror) do update set
           status = excluded.status, observed_at = excluded.observed_at,
           status_since = case when m.status = excluded.status then m.status_since else excluded.observed_at end,
           rows_synced = coalesce(excluded.rows_synced, m.rows_synced),
           transitions_total = m.transitions_total + $5::int, journal_length = m.journal_length + 1,
           journal_oldest_at = least(m.journal_oldest_at, excluded.observed_at), updated_at = now()`,
        [u.mirror, u.status, u.observedAt, u.rowsSynced ?? null, changed ? 1 : 0],
      );
      await client.query('commit');
    } catch (err) {
      await client.query('rollback');
      throw err;
    } finally {
      client.release();
    }
  }
}
