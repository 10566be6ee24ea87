/**
 * The databases a one-shot command (everything but `run`) works on, reached before the command does
 * anything, so that a database that is not there fails in one line naming it and its setting.
 *
 * Without DATABASE_URL a command uses the embedded PostgreSQL of the data directory: the one a
 * running daemon serves, else the cluster an earlier `run` made, started for the command and
 * stopped after it. It never makes a cluster: run somewhere else (another directory, a typo in
 * MIRRORSTATE_DATA_DIR), a command would otherwise leave a new, empty cluster behind and then fail
 * on a catalog that is not there.
 */
import path from 'node:path';
import { type Config, DEFAULT_DATA_DIR } from '../config.js';
import type { SessionLimits } from '../db/connection.js';
import { createPool, type Pool } from '../db/pool.js';
import { type Databases, settleDatabases } from '../databases.js';
import { hasEmbeddedCluster, runningEmbeddedUrl, startEmbeddedPostgres } from '../embedded.js';
import type { Logger } from '../log.js';
import { CATALOG_SETTING, CommandFailure, connectionFailure, type DatabaseSetting, EXIT, QUEUE_SETTING } from './failure.js';

/** Where the data directory is, as the message says it. */
function dataDirText(config: Config): string {
  if (config.dataDir === DEFAULT_DATA_DIR) return `here (./${DEFAULT_DATA_DIR})`;
  return `in ${path.resolve(config.dataDir)} (MIRRORSTATE_DATA_DIR / --data-dir)`;
}

export async function commandDatabases(config: Config, logger: Logger): Promise<Databases> {
  if (config.databaseUrl !== undefined) return settleDatabases(config, config.databaseUrl, undefined);
  const running = runningEmbeddedUrl(config.dataDir);
  if (running !== undefined) return settleDatabases(config, running, undefined);
  if (!hasEmbeddedCluster(config.dataDir)) {
    throw new CommandFailure(
      `no mirrorstate data ${dataDirText(config)} and no DATABASE_URL: start the daemon first (\`npm start\` makes ` +
        'the embedded PostgreSQL), run this where it runs, or set DATABASE_URL (--database-url)',
      EXIT.usage,
    );
  }
  const embedded = await startEmbeddedPostgres(config.dataDir, logger);
  try {
    return await settleDatabases(config, embedded.url, embedded);
  } catch (err) {
    await embedded.stop();
    throw err;
  }
}

/** The databases a command reaches, each with the setting its URL comes from. */
export function targetsOf(databases: Databases, config: Config): DatabaseSetting[] {
  const catalogSetting = config.databaseUrl === undefined ? `the embedded PostgreSQL of ${path.resolve(config.dataDir)}` : CATALOG_SETTING;
  const targets = [{ url: databases.catalogUrl, setting: catalogSetting }];
  if (databases.queueUrl !== databases.catalogUrl) targets.push({ url: databases.queueUrl, setting: QUEUE_SETTING });
  return targets;
}

/** Connects once to each database, so that one that is not there fails naming it and its setting. */
export async function reach(targets: readonly DatabaseSetting[], logger: Logger, limits: SessionLimits): Promise<void> {
  for (const target of targets) {
    let pool: Pool | undefined;
    try {
      // Inside: a certificate or key that cannot be read fails here, naming the parameter and file.
      pool = createPool(target.url, 1, 'mirrorstate-cli', logger, undefined, limits);
      await pool.query('select 1');
    } catch (err) {
      throw connectionFailure(err, target);
    } finally {
      await pool?.end().catch(() => undefined);
    }
  }
}
