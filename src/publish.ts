/**
 * The producer library: validate with the daemon's own parser, then enqueue through pg-boss,
 * optionally inside the caller's transaction (`db`), so a producer can change its own tables and
 * publish the update atomically.
 */
import type { Db, PgBoss } from 'pg-boss';
import { UPDATES_QUEUE } from './queue/boss.js';
import { type FieldError, MAX_UPDATES_PER_MESSAGE, parseUpdate } from './update.js';

export interface PublishOptions {
  /** Run the insert through this connection (a transaction of the caller's). */
  db?: Db;
}

export class InvalidUpdateError extends Error {
  constructor(readonly errors: (FieldError & { index: number })[]) {
    super(
      `invalid update${errors.length > 1 ? 's' : ''}: ${errors
        .slice(0, 5)
        .map((e) => `[${e.index}] ${e.field || 'update'} ${e.message}`)
        .join('; ')}${errors.length > 5 ? ` (and ${errors.length - 5} more)` : ''}`,
    );
    this.name = 'InvalidUpdateError';
  }
}

/** Every error of every update, by index; empty when all are valid. */
export function validateUpdates(updates: readonly unknown[], nowMs: number = Date.now()): (FieldError & { index: number })[] {
  return updates.flatMap((u, index) => {
    const result = parseUpdate(u, nowMs);
    return result.ok ? [] : result.errors.map((e) => ({ index, ...e }));
  });
}

/**
 * Validates all updates (nothing is enqueued if any is invalid), then enqueues them as
 * `{ updates: [...] }` jobs of at most 1000. Returns the job ids.
 */
export async function publishUpdates(boss: PgBoss, updates: readonly object[], options: PublishOptions = {}): Promise<string[]> {
  const errors = validateUpdates(updates);
  if (errors.length > 0) throw new InvalidUpdateError(errors);
  const jobs: { data: object }[] = [];
  for (let i = 0; i < updates.length; i += MAX_UPDATES_PER_MESSAGE) {
    const chunk = updates.slice(i, i + MAX_UPDATES_PER_MESSAGE);
    jobs.push({ data: chunk.length === 1 ? (chunk[0] as object) : { updates: chunk } });
  }
  if (jobs.length === 0) return [];
  const ids = await boss.insert(UPDATES_QUEUE, jobs, { ...(options.db ? { db: options.db } : {}), returnId: true });
  return (ids ?? []) as string[];
}
