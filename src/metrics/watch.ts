/**
 * The catalog's word that mirrors changed: one connection that LISTENs on the channel migration
 * 0006's trigger notifies for every statement that writes `mirrors`, with the schema as payload.
 *
 * `barrier()` is what makes a cached scrape exact. PostgreSQL signals a listener when a notifying
 * transaction commits, before that commit returns to its writer, and a listener sends its pending
 * notifications before it runs the next query it reads. So when `barrier()` resolves, every
 * change committed before it was called has been reported through `onChange`: no report means the
 * cache read before the call still holds.
 *
 * One barrier query at a time: node-pg queues a second query on a busy client (and warns about
 * it), and a barrier already in flight was sent before a later caller asked, so it does not cover
 * what committed in between. Callers that arrive while one runs share the next one, sent when it
 * settles: concurrent scrapes cost at most two round trips, one after the other.
 *
 * A connection pooler in transaction mode would break both halves (LISTEN and the next query may
 * reach different server connections), so a new connection proves it hears its own notification
 * before it counts as listening; one that does not stays off, and scrapes read the catalog as
 * before. Lost connections are reconnected with backoff; every (re)connection calls `onListen`,
 * because what changed while nobody listened was not reported.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { withTimeout } from '../async.js';
import type { Logger } from '../log.js';
import type { Outage } from '../db/outage.js';
import { connectionConfig, DEFAULT_SESSION_LIMITS, type SessionLimits } from '../db/connection.js';

/** The channel migration 0006's trigger notifies. */
export const MIRRORS_CHANNEL = 'mirrorstate_mirrors';
export const WATCH_CONNECT_TIMEOUT_MS = 5_000;
/** How long a new connection waits to hear its own probe notification. */
export const PROBE_TIMEOUT_MS = 2_000;
export const RECONNECT_FIRST_MS = 250;
export const RECONNECT_MAX_MS = 5_000;

export interface CatalogWatchOptions {
  url: string;
  /** Session limits of the listening connection (default: the settings' defaults). */
  limits?: SessionLimits;
  schema: string;
  logger: Logger;
  outage?: Outage;
  /** A statement that writes the schema's `mirrors` committed. */
  onChange: () => void;
  /** A connection started listening: anything may have changed while none did. */
  onListen: () => void;
}

export class CatalogWatch {
  private client: pg.Client | undefined;
  private closed = false;
  private reconnectMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private probe: { payload: string; heard: () => void } | undefined;
  /** The barrier query on the connection, and the one that callers arriving meanwhile wait for. */
  private barrierInFlight: Promise<void> | undefined;
  private barrierNext: Promise<void> | undefined;

  constructor(private readonly options: CatalogWatchOptions) {
    this.log = options.logger.child({ component: 'metrics-watch' });
  }

  /** True while a connection listens and has heard its own probe. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  start(): void {
    void this.connect();
  }

  /**
   * Resolves once every change committed before the call has been reported; rejects (and drops
   * the connection) when the connection does not answer within `timeoutMs`.
   */
  async barrier(timeoutMs: number): Promise<void> {
    if (this.client === undefined) throw new Error('not listening to the catalog');
    if (this.barrierInFlight === undefined) return this.sendBarrier(timeoutMs);
    this.barrierNext ??= this.barrierInFlight.catch(() => undefined).then(() => {
      this.barrierNext = undefined;
      return this.sendBarrier(timeoutMs);
    });
    // This caller's own bound covers the wait for the barrier in flight too.
    return withTimeout(this.barrierNext, timeoutMs);
  }

  private sendBarrier(timeoutMs: number): Promise<void> {
    const client = this.client;
    if (client === undefined) return Promise.reject(new Error('not listening to the catalog'));
    const sent = withTimeout(client.query('select 1'), timeoutMs).then(
      () => undefined,
      (err: unknown) => {
        this.lost(client, err);
        throw err;
      },
    );
    this.barrierInFlight = sent;
    const settled = (): void => {
      if (this.barrierInFlight === sent) this.barrierInFlight = undefined;
    };
    sent.then(settled, settled);
    return sent;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const { url, schema } = this.options;
    const client = new pg.Client({
      ...connectionConfig(url, this.options.limits ?? DEFAULT_SESSION_LIMITS),
      application_name: 'mirrorstate-metrics-watch',
      connectionTimeoutMillis: WATCH_CONNECT_TIMEOUT_MS,
      // A peer gone without a word (a network cut) must not leave a connection that hears nothing.
      keepAlive: true,
    });
    client.on('notification', (msg) => {
      if (msg.channel !== MIRRORS_CHANNEL) return;
      const probe = this.probe;
      if (msg.payload === schema) this.options.onChange();
      else if (probe !== undefined && msg.payload === probe.payload) probe.heard();
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('the listening connection closed')));
    try {
      await client.connect();
      await client.query(`listen ${MIRRORS_CHANNEL}`);
      if (!(await this.hearsItself(client))) {
        this.log.warn(
          'notifications sent on this connection do not come back (a pooler in transaction mode?): scrapes read the catalog each time',
        );
        await client.end().catch(() => undefined);
        return;
      }
    } catch (err) {
      client.end().catch(() => undefined);
      this.retry(err);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.reconnectMs = 0;
    this.client = client;
    this.log.debug('listening for catalog changes');
    this.options.onListen();
  }

  private async hearsItself(client: pg.Client): Promise<boolean> {
    const payload = `probe ${randomUUID()}`;
    let timer: NodeJS.Timeout | undefined;
    const heard = new Promise<boolean>((resolve) => {
      this.probe = { payload, heard: () => resolve(true) };
      timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
    });
    try {
      await client.query('select pg_notify($1, $2)', [MIRRORS_CHANNEL, payload]);
      return await heard;
    } finally {
      clearTimeout(timer);
      this.probe = undefined;
    }
  }

  private lost(client: pg.Client, err: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.retry(err);
  }

  private retry(err: unknown): void {
    if (this.closed) return;
    if (!this.options.outage?.report(err)) this.log.warn({ err }, 'listening for catalog changes failed: retrying');
    this.reconnectMs = Math.min(RECONNECT_MAX_MS, Math.max(RECONNECT_FIRST_MS, this.reconnectMs * 2));
    this.timer = setTimeout(() => void this.connect(), this.reconnectMs);
  }
}
