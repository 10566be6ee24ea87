/**
 * `mirrorstate run`: the daemon (main.ts) in the foreground until a signal.
 *
 * What a person can get wrong is checked before anything is made: the HTTP port first (a taken port
 * must not cost an initdb and a migration, only to fail at the end), then each configured database
 * (reached once, so that one that is not there fails naming its setting). A start that fails after
 * that stops whatever it had started, and ends in one line too.
 */
import { createServer } from 'node:net';
import { type Config, sessionLimits } from '../config.js';
import { type Logger } from '../log.js';
import { Daemon } from '../main.js';
import { reach } from './databases.js';
import { CATALOG_SETTING, CommandFailure, EXIT, listenFailure, QUEUE_SETTING } from './failure.js';

/** Listens on the daemon's port for a moment; fails as the daemon's own listen would. Port 0 is always free. */
export async function checkPort(port: number, host: string): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => reject(new CommandFailure(listenFailure(err.code ?? err.message, port, host), EXIT.failed)));
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/**
 * Starts the daemon; resolves only when the start fails (with the error), since a running daemon
 * ends by a signal and process.exit.
 */
export async function runDaemon(config: Config, logger: Logger): Promise<never> {
  await checkPort(config.httpPort, config.httpHost);
  // The embedded server, when there is no DATABASE_URL, is the daemon's to make and start.
  const targets = [];
  if (config.databaseUrl !== undefined) targets.push({ url: config.databaseUrl, setting: CATALOG_SETTING });
  if (config.queueDatabaseUrl !== undefined && config.queueDatabaseUrl !== config.databaseUrl) {
    targets.push({ url: config.queueDatabaseUrl, setting: QUEUE_SETTING });
  }
  await reach(targets, logger, sessionLimits(config));
  const daemon = new Daemon(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    // Ctrl-C under `npm start` arrives twice (from the terminal, and forwarded by npm): one shutdown.
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'signal received');
    daemon.stop().then(
      () => process.exit(EXIT.ok),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(EXIT.failed);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A closed terminal: without this, Node dies at once and leaves the embedded server running.
  process.on('SIGHUP', () => stop('SIGHUP'));
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop().catch(() => undefined);
    throw err;
  }
  return new Promise<never>(() => undefined); // runs until a signal
}
