/**
 * vitest globalSetup: the PostgreSQL server every test file makes its database on, chosen once per
 * run and handed to the files as `inject('testServerUrl')` (test/helpers/db.ts reads it):
 *
 * 1. TEST_DATABASE_URL, when set;
 * 2. else the machine's PostgreSQL at 127.0.0.1:5432 (user postgres, no password), when it answers;
 * 3. else the project's own embedded PostgreSQL (src/embedded.ts), started here for this run in a
 *    temporary data directory and removed at the end, so a machine with no PostgreSQL service
 *    runs the suite all the same.
 *
 * A failure here is one line on stderr and exit 1: nothing has run yet, and a stack says no more.
 */
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/embedded.js';
import { createLogger } from '../../src/log.js';
import { removeEmbeddedData } from '../helpers/embedded.js';

export const LOCAL_SERVER_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

declare module 'vitest' {
  export interface ProvidedContext {
    testServerUrl: string;
  }
}

/** Why the local server cannot serve, or undefined when it can. */
async function localServerProblem(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: LOCAL_SERVER_URL, connectionTimeoutMillis: 3_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function stop(message: string): never {
  process.stderr.write(`tests: ${message}\n`);
  process.exit(1);
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.TEST_DATABASE_URL) {
    project.provide('testServerUrl', process.env.TEST_DATABASE_URL);
    return async () => undefined;
  }
  const problem = await localServerProblem();
  if (problem === undefined) {
    project.provide('testServerUrl', LOCAL_SERVER_URL);
    return async () => undefined;
  }

  const dataDir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-tests-'));
  // Searchable by the postgres user the server runs as under root, so the cluster stays in here.
  chmodSync(dataDir, 0o755);
  const cleanUp = () => {
    removeEmbeddedData(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  };
  let server: Awaited<ReturnType<typeof startEmbeddedPostgres>>;
  try {
    server = await startEmbeddedPostgres(dataDir, createLogger('silent'));
  } catch (err) {
    cleanUp();
    stop(
      `no PostgreSQL at 127.0.0.1:5432 (${problem}) and the embedded one did not start: ${(err as Error).message}. ` +
        'Set TEST_DATABASE_URL to a PostgreSQL server the tests may create databases on',
    );
  }
  const url = new URL(server.url);
  url.pathname = '/postgres';
  project.provide('testServerUrl', url.toString());
  process.stdout.write(`tests: no PostgreSQL at 127.0.0.1:5432, running on the embedded server (${dataDir})\n`);
  return async () => {
    await server.stop();
    cleanUp();
  };
}
