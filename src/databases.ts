/**
 * Where the catalog and the queue live, and bringing them to the current schema: shared by the
 * daemon (main.ts) and the one-shot commands (cli/).
 */
import path from 'node:path';
import type { PgBoss } from 'pg-boss';
import { migrate } from './catalog/migrate.js';
import type { Config } from './config.js';
import { settleSslMode } from './db/connection.js';
import type { Pool } from './db/pool.js';
import { type EmbeddedDatabase, removeOrphans, startEmbeddedPostgres } from './embedded.js';
import { type Logger, redactUrl } from './log.js';
import { ensureQueues } from './queue/boss.js';

export interface Databases {
  catalogUrl: string;
  queueUrl: string;
  /** MIRRORSTATE_PEERDB_URL, when set. */
  peerdbUrl: string | undefined;
  embedded: EmbeddedDatabase | undefined;
}

/**
 * The daemon's databases: the catalog URL from config, else the embedded PostgreSQL of the data
 * directory, made when there is none yet and started for this process. (The one-shot commands never
 * make one: cli/databases.ts.)
 */
export async function resolveDatabases(config: Config, logger: Logger): Promise<Databases> {
  let embedded: EmbeddedDatabase | undefined;
  let catalogUrl = config.databaseUrl;
  if (catalogUrl === undefined) {
    removeOrphans(logger);
    embedded = await startEmbeddedPostgres(config.dataDir, logger);
    catalogUrl = embedded.url;
    // Where it runs, for psql and friends; the password stays in the data directory's `url` file (0600).
    process.stdout.write(
      `mirrorstate: embedded PostgreSQL running, DATABASE_URL=${redactUrl(catalogUrl)} (the whole URL is in ${path.join(config.dataDir, 'url')})\n`,
    );
  }
  try {
    return await settleDatabases(config, catalogUrl, embedded);
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
}

/**
 * A catalog URL with the queue's and PeerDB's from config, their sslmode allow and prefer settled
 * here, once for the process (db/connection.ts).
 */
export async function settleDatabases(config: Config, catalogUrl: string, embedded: EmbeddedDatabase | undefined): Promise<Databases> {
  const queueUrl = config.queueDatabaseUrl ?? catalogUrl;
  const [catalog, queue, peerdb] = await Promise.all([
    settleSslMode(catalogUrl),
    queueUrl === catalogUrl ? undefined : settleSslMode(queueUrl),
    config.peerdbUrl === undefined ? undefined : settleSslMode(config.peerdbUrl),
  ]);
  return { catalogUrl: catalog, queueUrl: queue ?? catalog, peerdbUrl: peerdb, embedded };
}

/** Catalog migrations, pg-boss's own schema, and the queues: what `mirrorstate migrate` does. */
export async function migrateAll(config: Config, pool: Pool, boss: PgBoss, logger: Logger): Promise<void> {
  await migrate(pool, config.schema, logger.child({ component: 'migrate' }), undefined, config.migrationStatementTimeoutMs);
  await ensureQueues(boss);
}
