/**
 * One poll of the PeerDB source: read PeerDB's snapshot, decide what changed against what was
 * published, publish it and remember it. Used by the poller (every interval, while it leads) and by
 * `mirrorstate peerdb-sync` (once).
 *
 * Publish and memory, exactly once in effect:
 * - Queue in the catalog database: the pg-boss jobs and the `peerdb_published` rows are written in
 *   one transaction on the leader's own connection (the one holding the leader lock). A crash
 *   leaves both or neither; and a leader whose connection died cannot commit, so a replica that took
 *   over meanwhile never sees a second copy.
 * - Queue in a database of its own: the jobs are inserted first, then the memory is written. A crash
 *   in between loses nothing: the next poll finds the memory behind and publishes the same content
 *   again under a newer version (its poll's clock), which the daemon applies as a repeat of the
 *   same status (a journal row, no transition). The other order could lose an update for good
 *   (remembered as published, never sent).
 */
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import type { Executor } from '../../catalog/sql.js';
import { toJobData } from '../../publish.js';
import { UPDATES_QUEUE } from '../../queue/boss.js';
import { decide, type Decision, observe, type PublishedState } from './decide.js';
import { recordPublished, readPublished } from './published.js';
import { type PeerdbShape, readPeerdb, type Tails } from './readPeerdb.js';

export interface SyncContext {
  /** Connected with PEERDB_SESSION_OPTIONS. */
  peerdb: pg.Client;
  shape: PeerdbShape;
  /** The leader's connection to mirrorstate's catalog database. */
  catalog: pg.Client;
  schema: string;
  boss: PgBoss;
  /** The queue lives in the catalog database: publish and memory commit together. */
  queueSharesCatalog: boolean;
  /** What the previous poll of this leader left; null on its first. */
  tails: Tails | null;
  /**
   * What the source published, as the previous poll of this leader left it; null: read it from the
   * catalog. Safe to carry while leading: only the lock holder writes it.
   */
  memory?: ReadonlyMap<string, PublishedState> | null;
  /** MIRRORSTATE_MAX_FUTURE: validate what is published as the daemon will. */
  maxFutureMs?: number;
  /** MIRRORSTATE_PEERDB_NUMBERS_INTERVAL: at most how often numbers alone are published (decide.ts). */
  numbersIntervalMs?: number;
}

export interface SyncSummary {
  seen: number;
  published: number;
  dropped: number;
  skipped: Decision['skipped'];
  /** Mirrors whose config_proto did not decode at this poll's read of their row (readPeerdb.ts). */
  undecodable: { mirror: string; reason: string }[];
  /** Mirrors with more tables than an update carries (tables.ts). */
  truncated: { mirror: string; tables: number }[];
  /** To hand to the next poll. */
  tails: Tails;
  /** PeerDB's clock at the poll. */
  observedAt: string;
  /** What the source has published after this poll, for the next (SyncContext.memory). */
  memory: ReadonlyMap<string, PublishedState>;
}

export async function syncOnce(ctx: SyncContext): Promise<SyncSummary> {
  const snapshot = await readPeerdb(ctx.peerdb, ctx.shape, ctx.tails);
  const catalog: Executor = { executeSql: (text, values) => ctx.catalog.query(text, values) };
  const published = ctx.memory ?? (await readPublished(catalog, ctx.schema));
  const decision = decide(observe(snapshot), published, snapshot.now, Date.now(), ctx.maxFutureMs, ctx.numbersIntervalMs);
  const summary: SyncSummary = {
    seen: decision.seen,
    published: decision.publish.length,
    dropped: decision.dropped,
    skipped: decision.skipped,
    undecodable: snapshot.undecodable,
    truncated: snapshot.truncated,
    tails: snapshot.tails,
    observedAt: snapshot.now,
    memory: published,
  };
  if (decision.publish.length === 0) return summary;
  const next = new Map(published);
  for (let i = 0; i < decision.publish.length; i += PUBLISH_CHUNK) {
    const chunk = decision.publish.slice(i, i + PUBLISH_CHUNK);
    await publishChunk(ctx, catalog, chunk);
    for (const { state } of chunk) next.set(state.mirror, state);
  }
  return { ...summary, memory: next };
}

/**
 * A poll that publishes much (a leader's first, over a whole fleet) publishes it in chunks of this
 * many updates, each committed on its own with its memory: the daemon writes the first chunk while
 * the next is being queued, instead of waiting for all of them (and holding one transaction of them
 * all). Each chunk keeps the rules above: its jobs and its memory commit together, or in that order.
 */
export const PUBLISH_CHUNK = 500;

async function publishChunk(ctx: SyncContext, catalog: Executor, chunk: Decision['publish']): Promise<void> {
  const jobs = toJobData(chunk.map((p) => p.update)).map((data) => ({ data }));
  const states = chunk.map((p) => p.state);
  if (ctx.queueSharesCatalog) {
    await ctx.catalog.query('begin');
    try {
      await ctx.boss.insert(UPDATES_QUEUE, jobs, { db: catalog });
      await recordPublished(catalog, ctx.schema, states);
      await ctx.catalog.query('commit');
    } catch (err) {
      await ctx.catalog.query('rollback').catch(() => undefined);
      throw err;
    }
  } else {
    await ctx.boss.insert(UPDATES_QUEUE, jobs);
    await recordPublished(catalog, ctx.schema, states);
  }
}
