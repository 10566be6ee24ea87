/** `mirrorstate publish --mirror M --status S …`: one update from flags, validated as any producer's. */
import { readFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import type { PgBoss } from 'pg-boss';
import { InvalidUpdateError, publishUpdates, type UpdateInput, validateUpdates } from '../publish.js';
import { CommandFailure, EXIT } from './failure.js';

export const PUBLISH_FLAGS = {
  mirror: { type: 'string' },
  status: { type: 'string' },
  'observed-at': { type: 'string' },
  seq: { type: 'string' },
  'rows-synced': { type: 'string' },
  'lag-seconds': { type: 'string' },
  'slot-lag-bytes': { type: 'string' },
  'slot-lag-sampled-at': { type: 'string' },
  'slot-wal-status': { type: 'string' },
  'tables-file': { type: 'string' },
  'error-class': { type: 'string' },
  'error-message': { type: 'string' },
  'workflow-id': { type: 'string' },
  'flow-type': { type: 'string' },
  source: { type: 'string' },
  destination: { type: 'string' },
  dropped: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

function numberFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new CommandFailure(`--${flag} must be a number, got "${value}"`, EXIT.usage);
  return n;
}

/** `--tables-file`: a JSON array of tables (docs/tables.md), from a file or, for `-`, standard input. */
function tablesFromFile(file: string | undefined): unknown {
  if (file === undefined) return undefined;
  const from = file === '-' ? 'standard input' : file;
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CommandFailure(`--tables-file cannot read ${from}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.usage);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CommandFailure(`--tables-file ${from} is not JSON: ${(err as Error).message}`, EXIT.usage);
  }
}

/** The update the flags spell; whether it is valid is publishUpdates' to say. */
export function updateFromFlags(values: Record<string, unknown>): object {
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
    slotLagSampledAt: v['slot-lag-sampled-at'],
    slotWalStatus: v['slot-wal-status'],
    tables: tablesFromFile(v['tables-file']),
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

/** An invalid update fails before any database is opened: what is wrong is the command line. */
export function checkUpdate(update: object, maxFutureMs: number): void {
  const errors = validateUpdates([update], Date.now(), maxFutureMs);
  if (errors.length > 0) throw new CommandFailure(new InvalidUpdateError(errors).message, EXIT.usage);
}

/** Enqueues the update and prints `{"enqueued": id}`; an invalid update fails with exit code 2. */
export async function publishOne(boss: PgBoss, update: object, maxFutureMs: number, out: NodeJS.WritableStream): Promise<number> {
  try {
    // Flags may be missing or mistyped: publishUpdates validates at run time and says which.
    const [id] = await publishUpdates(boss, [update as UpdateInput], { maxFutureMs });
    out.write(`${JSON.stringify({ enqueued: id })}\n`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof InvalidUpdateError) throw new CommandFailure(err.message, EXIT.usage);
    throw err;
  }
}
