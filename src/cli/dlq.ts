/**
 * `mirrorstate dlq list|show|redrive|purge`: an operator's tools for the dead-letter queue
 * (docs/cli.md). The SQL verbs live in queue/deadLetters.ts; this file is the commands around them.
 *
 * Redrive puts each letter's `update` back on `mirrorstate-updates` as a new job, exactly as it was
 * received. The daemon validates it again: valid now (say, after MIRRORSTATE_MAX_FUTURE was widened)
 * it is applied; still invalid, it comes back to the dead-letter queue as a new letter with its
 * reason. A letter for job data that was no update at all holds that data in `update` and is
 * redriven as it is, so it comes back too; purge it once it is understood.
 *
 * Explicit ids are all or nothing, in one transaction: one unknown id and nothing moves. A selection
 * by filter (or --all) moves REDRIVE_BATCH letters per transaction, in id order, and only letters
 * made before it started, so the ones that come back while it runs are not redriven again.
 */
import type { ParseArgsConfig } from 'node:util';
import type { PgBoss } from 'pg-boss';
import { clientExecutor, type Executor } from '../catalog/sql.js';
import { parseDuration } from '../config.js';
import type { SessionLimits } from '../db/connection.js';
import { createPool, inTransaction, type Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { DEAD_LETTER_QUEUE, UPDATES_QUEUE } from '../queue/boss.js';
import {
  countDeadLetters,
  type DeadLetterFilter,
  isDeadLetterId,
  listDeadLetters,
  purgeDeadLetters,
  queueNow,
  takeDeadLetters,
  takeDeadLettersById,
  type TakenDeadLetter,
} from '../queue/deadLetters.js';

/** Letters per redrive transaction: one delete and one insert statement each. */
export const REDRIVE_BATCH = 500;
/** Letters per purge statement. */
export const PURGE_BATCH = 5000;
/** Above this many letters a redrive or purge reports progress on stderr after each batch. */
export const PROGRESS_ABOVE = 1000;
export const DEFAULT_LIST_LIMIT = 100;

const REASON_CHARS = 120;
const MIRROR_CHARS = 40;

export const DLQ_FLAGS = {
  json: { type: 'boolean' },
  all: { type: 'boolean' },
  'older-than': { type: 'string' },
  'newer-than': { type: 'string' },
  reason: { type: 'string' },
  limit: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export const DLQ_USAGE = `  dlq list            dead letters, newest first: id, when, mirror, reason
                        [--older-than DUR] [--newer-than DUR] [--reason TEXT] [--mirror M]
                        [--limit N (default ${DEFAULT_LIST_LIMIT})] [--json]
  dlq show ID         one dead letter, whole, as JSON
  dlq redrive ID…     put the updates back on mirrorstate-updates as new jobs; a still invalid
  dlq redrive --all     one comes back as a new dead letter. --all, or any of --older-than,
                        --newer-than, --reason, --mirror, selects by filter instead of ids
  dlq purge ID…       delete dead letters: by id, by --older-than DUR, or --all (narrowed by
                        --newer-than, --reason, --mirror); prints how many`;

export class DlqUsageError extends Error {}

const SUBCOMMANDS = ['list', 'show', 'redrive', 'purge'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

export type DlqValues = { [K in keyof typeof DLQ_FLAGS]?: (typeof DLQ_FLAGS)[K]['type'] extends 'boolean' ? boolean : string } & {
  mirror?: string;
};

export interface DlqRequest {
  subcommand: Subcommand;
  ids: string[];
  filter: DeadLetterFilter;
  /** Whether a filter or --all selects the letters (rather than ids). */
  bySelection: boolean;
  limit: number;
  json: boolean;
}

function duration(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const ms = parseDuration(raw);
  if (typeof ms !== 'number') throw new DlqUsageError(`--${flag} ${ms.error}`);
  return ms;
}

/** `args` are the words after `dlq`; `values` the parsed flags. Throws DlqUsageError. */
export function parseDlqRequest(args: string[], values: DlqValues): DlqRequest {
  const [word, ...ids] = args;
  if (word === undefined) throw new DlqUsageError(`dlq needs a subcommand: ${SUBCOMMANDS.join(', ')}`);
  if (!SUBCOMMANDS.includes(word as Subcommand)) throw new DlqUsageError(`unknown dlq subcommand "${word}"`);
  const subcommand = word as Subcommand;
  const bad = ids.find((id) => !isDeadLetterId(id));
  if (bad !== undefined) throw new DlqUsageError(`"${bad}" is not a dead-letter id (a UUID, as dlq list shows)`);
  const filter: DeadLetterFilter = {
    olderThanMs: duration(values['older-than'], 'older-than'),
    newerThanMs: duration(values['newer-than'], 'newer-than'),
    reason: values.reason,
    mirror: values.mirror,
  };
  const filtered = Object.values(filter).some((v) => v !== undefined);
  const limitText = values.limit ?? String(DEFAULT_LIST_LIMIT);
  const limit = Number(limitText);
  if (!/^\d+$/.test(limitText) || limit < 1 || !Number.isSafeInteger(limit)) {
    throw new DlqUsageError(`--limit must be a positive integer, got "${limitText}"`);
  }
  const request = { subcommand, ids, filter, bySelection: values.all === true || filtered, limit, json: values.json === true };
  switch (subcommand) {
    case 'list':
      if (ids.length > 0) throw new DlqUsageError('dlq list takes no ids (dlq show ID shows one)');
      if (values.all) throw new DlqUsageError('dlq list takes no --all (--limit N lists more)');
      break;
    case 'show':
      if (ids.length !== 1 || filtered || values.all) throw new DlqUsageError('dlq show takes exactly one id');
      break;
    case 'redrive':
    case 'purge':
      if (ids.length > 0 && request.bySelection) {
        throw new DlqUsageError(`dlq ${subcommand} takes ids or a selection (--all or filters), not both`);
      }
      if (ids.length === 0 && !request.bySelection) {
        throw new DlqUsageError(
          subcommand === 'purge'
            ? 'dlq purge needs ids, --older-than DUR, or --all'
            : 'dlq redrive needs ids, --all, or a filter (--older-than, --newer-than, --reason, --mirror)',
        );
      }
      if (subcommand === 'purge' && ids.length === 0 && !values.all && filter.olderThanMs === undefined) {
        // A purge by reason or recency alone is easy to mistype into deleting fresh letters.
        throw new DlqUsageError('dlq purge by filter needs --older-than DUR, or --all to say so');
      }
      if (values.limit !== undefined) throw new DlqUsageError(`dlq ${subcommand} takes no --limit`);
      break;
  }
  return request;
}

/**
 * Text as a terminal may show it: a mirror name or reason in a dead letter is whatever a producer
 * sent, so control characters (ANSI escapes, newlines) and bidirectional overrides are escaped.
 */
export function printable(text: string, max: number): string {
  const escaped = text.replace(/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const chars = [...escaped];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : escaped;
}

/** JSON with C1 controls and line/paragraph separators escaped too (JSON.stringify leaves them raw). */
export function safeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(
    /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length))) ?? [];
  return rows.map((r) => r.map((cell, i) => cell + ' '.repeat(Math.max(0, (widths[i] ?? 0) - [...cell].length))).join('  ').trimEnd()).join('\n') + '\n';
}

function poolExecutor(pool: Pool): Executor {
  return { executeSql: (text, values) => pool.query(text, values) };
}

export interface DlqContext {
  boss: PgBoss;
  /** The queue database; a pool of its own for the transactions of a redrive. */
  pool: Pool;
  bossSchema: string;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export class UnknownDeadLettersError extends Error {
  constructor(readonly ids: string[]) {
    super(
      `no dead letter with id ${ids.join(', ')} (never existed, already redriven or purged, or not a mirrorstate dead letter); nothing was changed`,
    );
    this.name = 'UnknownDeadLettersError';
  }
}

async function list(ctx: DlqContext, request: DlqRequest): Promise<number> {
  const executor = poolExecutor(ctx.pool);
  const [total, letters] = await Promise.all([
    countDeadLetters(executor, ctx.bossSchema, request.filter),
    listDeadLetters(executor, ctx.bossSchema, request.filter, request.limit),
  ]);
  if (request.json) {
    ctx.out.write(`${safeJson({ total, shown: letters.length, deadLetters: letters }, 2)}\n`);
    return 0;
  }
  if (letters.length === 0) {
    ctx.out.write('no dead letters\n');
    return 0;
  }
  const rows = letters.map((l) => [l.id, l.createdAt, printable(l.mirror ?? '-', MIRROR_CHARS), printable(l.reason ?? '-', REASON_CHARS)]);
  ctx.out.write(table([['id', 'created_at', 'mirror', 'reason'], ...rows]));
  if (total > letters.length) ctx.err.write(`${letters.length} of ${total} dead letters shown; --limit N shows more\n`);
  return 0;
}

async function show(ctx: DlqContext, id: string): Promise<number> {
  const [letter] = await ctx.boss.findJobs<unknown>(DEAD_LETTER_QUEUE, { id });
  if (!letter) {
    ctx.err.write(`mirrorstate dlq show: no dead letter with id ${id}\n`);
    return 1;
  }
  const data = letter.data;
  const body: Record<string, unknown> = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>) : { data };
  // The contract's order (jsonb keeps keys in its own), then anything else the data holds.
  const { reason, errors, update, job } = body;
  const shown = { id: letter.id, queue: letter.name, state: letter.state, createdAt: letter.createdOn, keepUntil: letter.keepUntil };
  ctx.out.write(`${safeJson({ ...shown, reason, errors, update, job, ...body }, 2)}\n`);
  return 0;
}

/** Re-creates the taken letters' updates on the updates queue, through the same transaction. */
async function reinsert(ctx: DlqContext, tx: Executor, taken: TakenDeadLetter[]): Promise<void> {
  for (let i = 0; i < taken.length; i += REDRIVE_BATCH) {
    const jobs = taken.slice(i, i + REDRIVE_BATCH).map((t) => ({ data: t.update as object }));
    await ctx.boss.insert(UPDATES_QUEUE, jobs, { db: tx });
  }
}

export interface RedriveResult {
  redriven: number;
}

/** Redrives these ids, all or none (UnknownDeadLettersError names the missing ones). */
export async function redriveIds(ctx: DlqContext, ids: readonly string[]): Promise<RedriveResult> {
  const unique = [...new Set(ids.map((id) => id.toLowerCase()))];
  return inTransaction(ctx.pool, 'begin', async (client) => {
    const tx = clientExecutor(client);
    const taken = await takeDeadLettersById(tx, ctx.bossSchema, unique);
    if (taken.length < unique.length) {
      const found = new Set(taken.map((t) => t.id));
      throw new UnknownDeadLettersError(unique.filter((id) => !found.has(id)));
    }
    await reinsert(ctx, tx, taken);
    return { redriven: taken.length };
  });
}

/** Redrives every letter matching `filter` made before now, a batch per transaction. */
export async function redriveSelection(
  ctx: DlqContext,
  filter: DeadLetterFilter,
  onProgress: (done: number, total: number) => void = () => undefined,
  batchSize = REDRIVE_BATCH,
): Promise<RedriveResult> {
  const executor = poolExecutor(ctx.pool);
  const fixed = { ...filter, createdBefore: filter.createdBefore ?? (await queueNow(executor)) };
  const total = await countDeadLetters(executor, ctx.bossSchema, fixed);
  let redriven = 0;
  let afterId: string | null = null;
  for (;;) {
    const taken = await inTransaction(ctx.pool, 'begin', async (client) => {
      const tx = clientExecutor(client);
      const batch = await takeDeadLetters(tx, ctx.bossSchema, fixed, batchSize, afterId);
      await reinsert(ctx, tx, batch);
      return batch;
    });
    if (taken.length === 0) break;
    // Lower-case hex sorts as PostgreSQL orders uuids.
    afterId = taken.reduce((max, t) => (t.id > max ? t.id : max), afterId ?? '');
    redriven += taken.length;
    onProgress(redriven, Math.max(total, redriven));
  }
  return { redriven };
}

async function redrive(ctx: DlqContext, request: DlqRequest): Promise<number> {
  const started = performance.now();
  let result: RedriveResult;
  try {
    result = request.bySelection
      ? await redriveSelection(ctx, request.filter, (done, total) => {
          if (total > PROGRESS_ABOVE) ctx.err.write(`mirrorstate dlq redrive: ${done} of ${total} redriven\n`);
        })
      : await redriveIds(ctx, request.ids);
  } catch (err) {
    if (err instanceof UnknownDeadLettersError) {
      ctx.err.write(`mirrorstate dlq redrive: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  ctx.out.write(`${JSON.stringify({ ...result, durationMs: Math.round(performance.now() - started) })}\n`);
  return 0;
}

async function purgeIds(ctx: DlqContext, ids: readonly string[]): Promise<number> {
  const unique = [...new Set(ids.map((id) => id.toLowerCase()))];
  return inTransaction(ctx.pool, 'begin', async (client) => {
    const response = await ctx.boss.deleteJob(DEAD_LETTER_QUEUE, unique, { db: clientExecutor(client) });
    const { affected, settled } = response as { affected: number; settled?: unknown };
    if (affected < unique.length) {
      const deleted = new Set(Array.isArray(settled) ? settled.map(String) : []);
      throw new UnknownDeadLettersError(unique.filter((id) => !deleted.has(id)));
    }
    return affected;
  });
}

async function purge(ctx: DlqContext, request: DlqRequest): Promise<number> {
  const started = performance.now();
  let purged = 0;
  if (!request.bySelection) {
    try {
      purged = await purgeIds(ctx, request.ids);
    } catch (err) {
      if (err instanceof UnknownDeadLettersError) {
        ctx.err.write(`mirrorstate dlq purge: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  } else {
    const executor = poolExecutor(ctx.pool);
    const fixed = { ...request.filter, createdBefore: await queueNow(executor) };
    const total = await countDeadLetters(executor, ctx.bossSchema, fixed);
    let afterId: string | null = null;
    for (;;) {
      const batch = await purgeDeadLetters(executor, ctx.bossSchema, fixed, PURGE_BATCH, afterId);
      if (batch.purged === 0) break;
      afterId = batch.lastId;
      purged += batch.purged;
      if (total > PROGRESS_ABOVE) ctx.err.write(`mirrorstate dlq purge: ${purged} of ${Math.max(total, purged)} purged\n`);
    }
  }
  ctx.out.write(`${JSON.stringify({ purged, durationMs: Math.round(performance.now() - started) })}\n`);
  return 0;
}

export async function runDlq(ctx: DlqContext, request: DlqRequest): Promise<number> {
  switch (request.subcommand) {
    case 'list':
      return list(ctx, request);
    case 'show':
      return show(ctx, request.ids[0] as string);
    case 'redrive':
      return redrive(ctx, request);
    case 'purge':
      return purge(ctx, request);
  }
}

/** A pool on the queue database for `runDlq`; the caller ends it. */
export function createDlqPool(queueUrl: string, logger: Logger, limits?: SessionLimits): Pool {
  return createPool(queueUrl, 2, 'mirrorstate-dlq', logger, undefined, limits);
}
