#!/usr/bin/env node
/**
 * `mirrorstate [run|migrate|publish|status|trim|dlq|peerdb-sync] [flags]`. Every setting is an environment
 * variable with a flag of the same meaning (see config.ts); `--help` lists them with defaults.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, type Config, helpText, loadConfig, sessionLimits, settingFlags } from '../config.js';
import { createPool } from '../db/pool.js';
import { createDlqPool, DLQ_FLAGS, DLQ_USAGE, DlqUsageError, parseDlqRequest, runDlq, type DlqValues } from './dlq.js';
import { EmbeddedStartError } from '../embedded.js';
import { WebConfigError } from '../http/webConfig/read.js';
import { createLogger, type Logger } from '../log.js';
import { migrateAll, resolveDatabases } from '../databases.js';
import { Daemon } from '../main.js';
import { InvalidUpdateError, publishUpdates, type UpdateInput } from '../publish.js';
import { createBoss } from '../queue/boss.js';
import { printStatus } from './status.js';
import { trim } from '../catalog/trim.js';
import { peerdbSync } from './peerdbSync.js';

const COMMANDS = ['run', 'migrate', 'publish', 'status', 'trim', 'dlq', 'peerdb-sync'] as const;
type Command = (typeof COMMANDS)[number];

const PUBLISH_FLAGS = {
  mirror: { type: 'string' },
  status: { type: 'string' },
  'observed-at': { type: 'string' },
  seq: { type: 'string' },
  'rows-synced': { type: 'string' },
  'lag-seconds': { type: 'string' },
  'slot-lag-bytes': { type: 'string' },
  'error-class': { type: 'string' },
  'error-message': { type: 'string' },
  'workflow-id': { type: 'string' },
  'flow-type': { type: 'string' },
  source: { type: 'string' },
  destination: { type: 'string' },
  dropped: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const USAGE = `usage: mirrorstate [command] [flags]

commands:
  run                 the daemon (default)
  migrate             apply catalog migrations and create the queues, then exit
  publish             enqueue one state update:
                        --mirror M --status S [--observed-at T] [--seq N] [--rows-synced N]
                        [--lag-seconds X] [--slot-lag-bytes N] [--error-class C --error-message M]
                        [--dropped] [--workflow-id W] [--flow-type F] [--source P] [--destination P]
  status [MIRROR]     a table of current states, or one mirror with its transitions
  trim                run journal (and transitions) retention once, then exit
${DLQ_USAGE}
  peerdb-sync         one poll of the PeerDB catalog (MIRRORSTATE_PEERDB_URL): publish what changed,
                        print a summary, exit (refused while a daemon's poller leads)

settings (flag, environment variable; a flag wins):
${helpText()}
`;

class UsageError extends Error {}

function parse(argv: string[]) {
  const flagOptions = Object.fromEntries(settingFlags().map((flag) => [flag, { type: 'string' as const }]));
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...flagOptions, ...PUBLISH_FLAGS, ...DLQ_FLAGS, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  const [first, ...rest] = positionals;
  const command = (first ?? 'run') as Command;
  if (!COMMANDS.includes(command)) throw new UsageError(`unknown command "${first}"`);
  const dlqFlag = Object.keys(DLQ_FLAGS).find((f) => (values as Record<string, unknown>)[f] !== undefined);
  if (dlqFlag !== undefined && command !== 'dlq') throw new UsageError(`--${dlqFlag} belongs to the dlq command`);
  const flags: Record<string, string | undefined> = {};
  for (const flag of settingFlags()) flags[flag] = (values as Record<string, unknown>)[flag] as string | undefined;
  return { command, args: rest, values, flags, help: values.help === true };
}

function numberFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got "${value}"`);
  return n;
}

function updateFromFlags(values: Record<string, unknown>): object {
  const v = values as Partial<Record<keyof typeof PUBLISH_FLAGS, string>> & { dropped?: boolean };
  const statusCode = v.status !== undefined && /^\d+$/.test(v.status) ? Number(v.status) : v.status;
  const errorMessage = v['error-message'];
  return {
    mirror: v.mirror,
    status: statusCode,
    observedAt: v['observed-at'] ?? new Date().toISOString(),
    seq: numberFlag(v.seq, 'seq'),
    rowsSynced: numberFlag(v['rows-synced'], 'rows-synced'),
    lagSeconds: numberFlag(v['lag-seconds'], 'lag-seconds'),
    slotLagBytes: numberFlag(v['slot-lag-bytes'], 'slot-lag-bytes'),
    workflowId: v['workflow-id'],
    flowType: v['flow-type'],
    source: v.source,
    destination: v.destination,
    error:
      errorMessage !== undefined || v['error-class'] !== undefined
        ? { message: errorMessage ?? '', class: v['error-class'] }
        : undefined,
    dropped: v.dropped,
  };
}

async function withQueue<T>(config: Config, logger: Logger, fn: (ctx: Awaited<ReturnType<typeof openAll>>) => Promise<T>) {
  const ctx = await openAll(config, logger);
  try {
    return await fn(ctx);
  } finally {
    await ctx.boss.stop({ graceful: false, timeout: 1000 }).catch(() => undefined);
    await ctx.pool.end();
    await ctx.databases.embedded?.stop();
  }
}

/** The catalog alone, for commands that never touch the queue (status, trim). */
async function withCatalog<T>(config: Config, logger: Logger, fn: (pool: ReturnType<typeof createPool>) => Promise<T>) {
  const databases = await resolveDatabases(config, logger, true);
  const pool = createPool(databases.catalogUrl, 2, 'mirrorstate-cli', logger, undefined, sessionLimits(config));
  try {
    return await fn(pool);
  } finally {
    await pool.end();
    await databases.embedded?.stop();
  }
}

async function openAll(config: Config, logger: Logger) {
  const databases = await resolveDatabases(config, logger, true);
  const limits = sessionLimits(config);
  const pool = createPool(databases.catalogUrl, 2, 'mirrorstate-cli', logger, undefined, limits);
  const boss = createBoss({ connectionString: databases.queueUrl, schema: config.bossSchema, max: 2, logger, worker: false, limits });
  await boss.start();
  return { databases, pool, boss };
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`mirrorstate: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let config: Readonly<Config>;
  try {
    config = loadConfig(process.env, parsed.flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mirrorstate: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);

  switch (parsed.command) {
    case 'run': {
      const daemon = new Daemon(config, logger);
      let stopping = false;
      const stop = (signal: string) => {
        // Ctrl-C under `npm start` arrives twice (from the terminal, and forwarded by npm): one shutdown.
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'signal received');
        daemon.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(1);
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
        if (err instanceof EmbeddedStartError) throw err; // one line, below
        if (err instanceof WebConfigError) {
          process.stderr.write(`mirrorstate: ${err.message}\n`);
          return 2;
        }
        logger.fatal({ err }, 'could not start');
        return 1;
      }
      return new Promise<number>(() => undefined); // runs until a signal
    }
    case 'migrate':
      return withQueue(config, logger, async ({ pool, boss }) => {
        await migrateAll(config, pool, boss, logger);
        logger.info('catalog and queues are current');
        return 0;
      });
    case 'publish': {
      let update: object;
      try {
        update = updateFromFlags(parsed.values);
      } catch (err) {
        process.stderr.write(`mirrorstate publish: ${(err as Error).message}\n`);
        return 2;
      }
      return withQueue(config, logger, async ({ boss }) => {
        try {
          // Flags may be missing or mistyped: publishUpdates validates at run time and says which.
          const [id] = await publishUpdates(boss, [update as UpdateInput], { maxFutureMs: config.maxFutureMs });
          process.stdout.write(`${JSON.stringify({ enqueued: id })}\n`);
          return 0;
        } catch (err) {
          if (err instanceof InvalidUpdateError) {
            process.stderr.write(`mirrorstate publish: ${err.message}\n`);
            return 2;
          }
          throw err;
        }
      });
    }
    case 'status':
      return withCatalog(config, logger, (pool) => printStatus(pool, config.schema, parsed.args[0], process.stdout));
    case 'dlq': {
      let request: ReturnType<typeof parseDlqRequest>;
      try {
        request = parseDlqRequest(parsed.args, parsed.values as DlqValues);
      } catch (err) {
        if (!(err instanceof DlqUsageError)) throw err;
        process.stderr.write(`mirrorstate dlq: ${err.message}\n\n${DLQ_USAGE}\n`);
        return 2;
      }
      return withQueue(config, logger, async ({ boss, databases }) => {
        const pool = createDlqPool(databases.queueUrl, logger, sessionLimits(config));
        try {
          return await runDlq({ boss, pool, bossSchema: config.bossSchema, out: process.stdout, err: process.stderr }, request);
        } finally {
          await pool.end();
        }
      });
    }
    case 'trim':
      return withCatalog(config, logger, async (pool) => {
        const started = performance.now();
        const result = await trim(pool, config.schema, config);
        process.stdout.write(`${JSON.stringify({ ...result, durationMs: Math.round(performance.now() - started) })}\n`);
        return 0;
      });
    case 'peerdb-sync':
      if (config.peerdbUrl === undefined) {
        process.stderr.write('mirrorstate peerdb-sync: MIRRORSTATE_PEERDB_URL / --peerdb-url is not set\n');
        return 2;
      }
      return withQueue(config, logger, ({ databases, boss }) =>
        peerdbSync({ config, peerdbUrl: databases.peerdbUrl!, catalogUrl: databases.catalogUrl, boss, logger, out: process.stdout, err: process.stderr }),
      );
  }
}

// A reader that stops early (`mirrorstate status | head`, `dlq list | less` quit at once) closes
// the pipe: its choice, not a failure, so the command ends quietly and successfully, as Unix tools
// do, instead of dying on an unhandled EPIPE with a stack trace. (The daemon's log goes through
// pino's own descriptor, not process.stdout.)
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(0);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // The embedded server's failures say all the operator needs; a stack would bury it.
    const text = err instanceof EmbeddedStartError ? err.message : ((err as Error).stack ?? String(err));
    process.stderr.write(`mirrorstate: ${text}\n`);
    process.exitCode = 1;
  },
);
