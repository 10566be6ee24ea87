/**
 * `mirrorstate peerdb-sync`: one poll, by hand. It takes the same leader lock as the daemon's
 * poller, so it never runs beside one (two pollers could publish the same change twice); while a
 * daemon leads it refuses and says so: that daemon polls every interval anyway.
 */
import type { PgBoss } from 'pg-boss';
import { type Config, queueSharesCatalog, sessionLimits } from '../config.js';
import { type Logger, redactUrl } from '../log.js';
import { tryLead } from '../source/peerdb/leader.js';
import { connectPeerdb } from '../source/peerdb/poller.js';
import { syncOnce } from '../source/peerdb/sync.js';

export interface PeerdbSyncOptions {
  config: Config;
  peerdbUrl: string;
  catalogUrl: string;
  boss: PgBoss;
  logger: Logger;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/** Returns the exit code: 0 done, 1 PeerDB's catalog could not be read, 3 another poller leads. */
export async function peerdbSync(o: PeerdbSyncOptions): Promise<number> {
  const leadership = await tryLead(o.catalogUrl, o.config.schema, 'mirrorstate-peerdb-sync', o.logger, sessionLimits(o.config));
  if (!leadership) {
    o.err.write('mirrorstate peerdb-sync: a mirrorstate daemon polls PeerDB now (it holds the leader lock); nothing done.\n');
    return 3;
  }
  try {
    let peerdb: Awaited<ReturnType<typeof connectPeerdb>>;
    try {
      peerdb = await connectPeerdb(o.peerdbUrl, o.logger, sessionLimits(o.config));
    } catch (err) {
      o.err.write(`mirrorstate peerdb-sync: cannot read the PeerDB catalog at ${redactUrl(o.peerdbUrl)}: ${(err as Error).message}\n`);
      return 1;
    }
    try {
      const summary = await syncOnce({
        peerdb: peerdb.client, shape: peerdb.shape, catalog: leadership.client, schema: o.config.schema, boss: o.boss,
        queueSharesCatalog: queueSharesCatalog(o.config), tails: null, maxFutureMs: o.config.maxFutureMs,
        numbersIntervalMs: o.config.peerdbNumbersIntervalMs,
      });
      const { seen, published, dropped, skipped, observedAt } = summary;
      o.out.write(`${JSON.stringify({ seen, published, dropped, skipped: skipped.length, observedAt })}\n`);
      for (const s of skipped) o.err.write(`skipped ${JSON.stringify(s.mirror)}: ${s.reason}: ${s.detail}\n`);
      return 0;
    } catch (err) {
      o.err.write(`mirrorstate peerdb-sync: the poll failed: ${(err as Error).message}\n`);
      return 1;
    } finally {
      await peerdb.client.end().catch(() => undefined);
    }
  } finally {
    await leadership.release();
  }
}
