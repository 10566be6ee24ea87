#!/usr/bin/env node
/**
 * `mirrorstate [run|migrate|publish|status|trim|dlq|peerdb-sync] [flags]`. Every setting is an environment
 * variable with a flag of the same meaning (see config.ts); `--help` lists them with defaults. The
 * commands, their exit codes and their failures: docs/cli.md.
 *
 * Every failure a person can cause ends in one line on stderr (failure.ts): `mirrorstate: …` for
 * the daemon and for usage and configuration, `mirrorstate <command>: …` for a one-shot command.
 */
import { parseArgs } from 'node:util';
import type { PgBoss } from 'pg-boss';
import { trim } from '../catalog/trim.js';
import { ConfigError, type Config, helpText, loadConfig, sessionLimits, settingFlags } from '../config.js';
import { createPool, type Pool } from '../db/pool.js';
import { type Databases, migrateAll } from '../databases.js';
import { createLogger, type Logger } from '../log.js';
import { createBoss } from '../queue/boss.js';
import { commandDatabases, reach, targetsOf } from './databases.js';
import { createDlqPool, DLQ_FLAGS, DLQ_USAGE, DlqUsageError, parseDlqRequest, runDlq, type DlqValues } from './dlq.js';
import { CommandFailure, describeFailure, EXIT, scrubSecrets, secretsOf } from './failure.js';
import { peerdbSync } from './peerdbSync.js';
import { checkUpdate, PUBLISH_FLAGS, publishOne, updateFromFlags } from './publish.js';
import { runDaemon } from './run.js';
import { printStatus } from './status.js';

const COMMANDS = ['run', 'migrate', 'publish', 'status', 'trim', 'dlq', 'peerdb-sync'] as const;
type Command = (typeof COMMANDS)[number];

const USAGE = `usage: mirrorstate [command] [flags]

commands:
  run                 the daemon (default)
  migrate             apply catalog migrations and create the queues, then exit
  publish             enqueue one state update:
                        --mirror M --status S [--observed-at T] [--seq N] [--rows-synced N]
                        [--lag-seconds X] [--slot-lag-bytes N] [--slot-lag-sampled-at T]
                        [--slot-wal-status S] [--tables-file FILE|-] [--error-class C --error-message M]
                        [--dropped] [--workflow-id W] [--flow-type F] [--source P] [--destination P]
  status [MIRROR]     a table of current states, or one mirror with its transitions
  trim                run journal (and transitions) retention once, then exit
${DLQ_USAGE}
  peerdb-sync         one poll of the PeerDB catalog (MIRRORSTATE_PEERDB_URL): publish what changed,
                        print a summary, exit (refused while a daemon's poller leads)

settings (flag, environment variable; a flag wins):
${helpText()}
`;

const SEE_HELP = 'see mirrorstate --help';

function parse(argv: string[]) {
  const flagOptions = Object.fromEntries(settingFlags().map((flag) => [flag, { type: 'string' as const }]));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...flagOptions, ...PUBLISH_FLAGS, ...DLQ_FLAGS, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    // node:util's messages run over several lines ("To specify a positional argument …").
    throw new CommandFailure(`${(err as Error).message.split('\n', 1)[0]}; ${SEE_HELP}`, EXIT.usage);
  }
  const { values, positionals } = parsed;
  const [first, ...rest] = positionals;
  const command = (first ?? 'run') as Command;
  if (!COMMANDS.includes(command)) throw new CommandFailure(`unknown command "${first}"; ${SEE_HELP}`, EXIT.usage);
  const dlqFlag = Object.keys(DLQ_FLAGS).find((f) => (values as Record<string, unknown>)[f] !== undefined);
  if (dlqFlag !== undefined && command !== 'dlq') throw new CommandFailure(`--${dlqFlag} belongs to the dlq command; ${SEE_HELP}`, EXIT.usage);
  const flags: Record<string, string | undefined> = {};
  for (const flag of settingFlags()) flags[flag] = (values as Record<string, unknown>)[flag] as string | undefined;
  return { command, args: rest, values: values as Record<string, unknown>, flags, help: values.help === true };
}

interface Opened {
  databases: Databases;
  pool: Pool;
  boss: PgBoss;
}

/**
 * Opens what a one-shot command needs, runs it, and closes everything, whatever happened. The
 * databases are reached first (databases.ts); `install` lets pg-boss set its schema up (migrate only).
 */
async function withDatabases<T>(config: Config, logger: Logger, needs: { queue: boolean; install?: boolean }, fn: (opened: Opened) => Promise<T>): Promise<T> {
  const databases = await commandDatabases(config, logger);
  let pool: Pool | undefined;
  let boss: PgBoss | undefined;
  const limits = sessionLimits(config);
  try {
    await reach(targetsOf(databases, config), logger, limits);
    pool = createPool(databases.catalogUrl, 2, 'mirrorstate-cli', logger, undefined, limits);
    if (needs.queue) {
      boss = createBoss({
        connectionString: databases.queueUrl, schema: config.bossSchema, max: 2, logger, worker: false, limits, install: needs.install === true,
      });
      await boss.start();
    }
    return await fn({ databases, pool, boss: boss as PgBoss });
  } finally {
    await boss?.stop({ graceful: false, timeout: 1000 }).catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await databases.embedded?.stop();
  }
}

async function runCommand(command: Command, parsed: ReturnType<typeof parse>, config: Config, logger: Logger): Promise<number> {
  switch (command) {
    case 'run':
      return runDaemon(config, logger);
    case 'migrate':
      return withDatabases(config, logger, { queue: true, install: true }, async ({ pool, boss }) => {
        await migrateAll(config, pool, boss, logger);
        logger.info('catalog and queues are current');
        return EXIT.ok;
      });
    case 'publish': {
      const update = updateFromFlags(parsed.values);
      checkUpdate(update, config.maxFutureMs);
      return withDatabases(config, logger, { queue: true }, ({ boss }) => publishOne(boss, update, config.maxFutureMs, process.stdout));
    }
    case 'status':
      return withDatabases(config, logger, { queue: false }, ({ pool }) => printStatus(pool, config.schema, parsed.args[0], process.stdout));
    case 'dlq': {
      let request: ReturnType<typeof parseDlqRequest>;
      try {
        request = parseDlqRequest(parsed.args, parsed.values as DlqValues);
      } catch (err) {
        if (err instanceof DlqUsageError) throw new CommandFailure(`${err.message}; ${SEE_HELP}`, EXIT.usage);
        throw err;
      }
      return withDatabases(config, logger, { queue: true }, async ({ boss, databases }) => {
        const pool = createDlqPool(databases.queueUrl, logger, sessionLimits(config));
        try {
          return await runDlq({ boss, pool, bossSchema: config.bossSchema, out: process.stdout, err: process.stderr }, request);
        } finally {
          await pool.end();
        }
      });
    }
    case 'trim':
      return withDatabases(config, logger, { queue: false }, async ({ pool }) => {
        const started = performance.now();
        const result = await trim(pool, config.schema, config);
        process.stdout.write(`${JSON.stringify({ ...result, durationMs: Math.round(performance.now() - started) })}\n`);
        return EXIT.ok;
      });
    case 'peerdb-sync': {
      if (config.peerdbUrl === undefined) throw new CommandFailure('MIRRORSTATE_PEERDB_URL / --peerdb-url is not set', EXIT.usage);
      return withDatabases(config, logger, { queue: true }, ({ databases, boss }) =>
        peerdbSync({ config, peerdbUrl: databases.peerdbUrl!, catalogUrl: databases.catalogUrl, boss, logger, out: process.stdout, err: process.stderr }),
      );
    }
  }
}

async function main(argv: string[]): Promise<number> {
  let prefix = 'mirrorstate: ';
  let secrets: string[] = [];
  let verbose = false;
  let schemas = { schema: 'mirrorstate', bossSchema: 'pgboss' };
  let logger: Logger | undefined;
  let command: Command | undefined;
  try {
    const parsed = parse(argv);
    if (parsed.help) {
      process.stdout.write(USAGE);
      return EXIT.ok;
    }
    let config: Readonly<Config>;
    try {
      config = loadConfig(process.env, parsed.flags);
    } catch (err) {
      if (err instanceof ConfigError) throw new CommandFailure(err.message, EXIT.usage);
      throw err;
    }
    command = parsed.command;
    if (command !== 'run') prefix = `mirrorstate ${command}: `;
    secrets = secretsOf([config.databaseUrl, config.queueDatabaseUrl, config.peerdbUrl, config.ingestToken]);
    verbose = config.logLevel === 'debug' || config.logLevel === 'trace';
    schemas = { schema: config.schema, bossSchema: config.bossSchema };
    logger = createLogger(config.logLevel);
    return await runCommand(command, parsed, config, logger);
  } catch (err) {
    const { line, exitCode, stack } = describeFailure(err, { ...schemas, verbose });
    const shown = scrubSecrets(line, secrets);
    // The daemon's log gets the failure too, as one line without a stack, for whoever reads logs only.
    if (command === 'run') logger?.fatal({ reason: shown }, 'could not start');
    process.stderr.write(`${prefix}${shown}\n${stack ? `${scrubSecrets(stack, secrets)}\n` : ''}`);
    return exitCode;
  }
}

// A reader that stops early (`mirrorstate status | head`, `dlq list | less` quit at once) closes
// the pipe: its choice, not a failure, so the command ends quietly and successfully, as Unix tools
// do, instead of dying on an unhandled EPIPE with a stack trace. (The daemon's log goes through
// pino's own descriptor, not process.stdout.)
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(EXIT.ok);
});

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
