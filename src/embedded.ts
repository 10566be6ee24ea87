/**
 * The newcomer's default: without DATABASE_URL, `mirrorstate run` starts a real PostgreSQL for the
 * data directory (`./.mirrorstate/` unless configured) and keeps it between runs. It works from any
 * directory, as root or not: embedded/placement.ts decides where the binaries and the cluster live,
 * embedded/server.ts runs them. The data directory always holds `url` (the server's URL while it
 * runs) and, when the cluster lives elsewhere, `location` pointing at it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { EmbeddedStartError } from './embedded/error.js';
import { databaseDirOf, place, removeOrphanedClusters, runningAsRoot } from './embedded/placement.js';
import { createDatabase, EmbeddedServer, isPostgres, USER } from './embedded/server.js';
import type { Logger } from './log.js';

export { EmbeddedStartError };

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const DATABASE_NAME = 'mirrorstate';

/**
 * The URL of an embedded server another mirrorstate process (the daemon) already runs on this data
 * directory, so `publish` and `status` talk to it instead of starting a second one.
 */
export function runningEmbeddedUrl(dataDir: string): string | undefined {
  try {
    const pid = Number(readFileSync(path.join(databaseDirOf(dataDir), 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!isPostgres(pid)) return undefined;
    return readFileSync(path.join(path.resolve(dataDir), 'url'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Removes the clusters under /var/lib/mirrorstate whose data directory is gone or points at a newer
 * one (embedded/placement.ts): what deleting ./.mirrorstate/ left behind. `mirrorstate run` does it
 * before it starts its own.
 */
export function removeOrphans(logger: Logger): void {
  if (!runningAsRoot()) return; // only root places clusters there
  const isRunning = (databaseDir: string) => {
    try {
      return isPostgres(Number(readFileSync(path.join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]));
    } catch {
      return false;
    }
  };
  for (const { home, owner } of removeOrphanedClusters(isRunning)) {
    logger.info({ cluster: home, dataDir: owner }, 'removed an embedded cluster its data directory no longer points at');
  }
}

/** Whether the data directory holds a cluster, made by an earlier `mirrorstate run`. */
export function hasEmbeddedCluster(dataDir: string): boolean {
  return existsSync(path.join(databaseDirOf(dataDir), 'PG_VERSION'));
}

/**
 * Starts the data directory's embedded server, making the cluster first when there is none: only
 * `mirrorstate run` may make one (the one-shot commands check hasEmbeddedCluster first).
 */
export async function startEmbeddedPostgres(dataDir: string, logger: Logger): Promise<EmbeddedDatabase> {
  const placement = await place(dataDir);
  const server = new EmbeddedServer({ ...placement, logger });
  await server.start();
  try {
    await createDatabase(server.port, server.password, DATABASE_NAME);
  } catch (cause) {
    await server.stop();
    throw new EmbeddedStartError(
      `the embedded PostgreSQL in ${placement.databaseDir} started but creating the database "${DATABASE_NAME}" failed: ` +
        `${(cause as Error).message}. Set DATABASE_URL to use a PostgreSQL of your own`,
      { cause },
    );
  }
  const url = `postgres://${USER}:${encodeURIComponent(server.password)}@127.0.0.1:${server.port}/${DATABASE_NAME}`;
  writeFileSync(path.join(path.resolve(dataDir), 'url'), `${url}\n`, { mode: 0o600 });
  return { url, stop: () => server.stop() };
}
