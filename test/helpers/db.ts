/**
 * Each test file makes its own database on the test server and drops it when it is done, unless a
 * test failed and KEEP_FAILED_DATABASES is set, to leave evidence behind. Under vitest the server is
 * the one test/setup/database.ts chose for the run (TEST_DATABASE_URL, else the machine's
 * PostgreSQL at 127.0.0.1:5432, else the embedded one); outside it (the benchmarks, the
 * screenshots) TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const SERVER_URL: string = process.env.VITEST
  ? (await import('vitest')).inject('testServerUrl')
  : (process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

export function databaseUrl(name: string): string {
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs one statement on the server's maintenance database (create/drop database, settings). */
export async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const name = `ms_${prefix.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: SERVER_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  // A query's failure reaches the test through its promise. What arrives as an event instead (an
  // idle client, or one still ending, cut off by the forced drop below) is no test's business, and
  // unheard it would be an unhandled error that fails the whole run.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: SERVER_URL });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
