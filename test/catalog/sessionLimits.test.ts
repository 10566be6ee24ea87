/**
 * MIRRORSTATE_DB_STATEMENT_TIMEOUT, _IDLE_IN_TRANSACTION_TIMEOUT and _LOCK_TIMEOUT reach every kind
 * of connection the daemon opens, and each cuts what it is meant to cut; migrations run under their
 * own statement timeout and hand the connection back with the configured one.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/catalog/migrate.js';
import { loadConfig, sessionLimits } from '../../src/config.js';
import type { SessionLimits } from '../../src/db/connection.js';
import { createPool } from '../../src/db/pool.js';
import { sqlState } from '../../src/db/sqlstate.js';
import { createLogger } from '../../src/log.js';
import { createSnapshotPool } from '../../src/metrics/snapshotPool.js';
import { createBoss } from '../../src/queue/boss.js';
import { connectPeerdb } from '../../src/source/peerdb/poller.js';
import { tryLead } from '../../src/source/peerdb/leader.js';
import { createPeerdbCatalog, type PeerdbCatalog } from '../helpers/peerdb.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const logger = createLogger('silent');
const LIMITS: SessionLimits = { statementTimeoutMs: 700, idleInTransactionTimeoutMs: 600, lockTimeoutMs: 300 };

let db: TestDatabase;
let pool: pg.Pool;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = await createTestDatabase('limits');
  pool = createPool(db.url, 4, 'limits-test', logger, undefined, LIMITS);
  closers.push(() => pool.end());
});
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await db?.drop();
});

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected it to fail');
}

describe('session limits', () => {
  it('come from the settings, with defaults that leave normal work alone', () => {
    expect(sessionLimits(loadConfig({}))).toEqual({ statementTimeoutMs: 300_000, idleInTransactionTimeoutMs: 60_000, lockTimeoutMs: 0 });
    expect(
      sessionLimits(loadConfig({ MIRRORSTATE_DB_STATEMENT_TIMEOUT: '30s', MIRRORSTATE_DB_IDLE_IN_TRANSACTION_TIMEOUT: '10s', MIRRORSTATE_DB_LOCK_TIMEOUT: '5s' })),
    ).toEqual({ statementTimeoutMs: 30_000, idleInTransactionTimeoutMs: 10_000, lockTimeoutMs: 5_000 });
    expect(() => loadConfig({ MIRRORSTATE_DB_LOCK_TIMEOUT: 'soon' })).toThrow(/MIRRORSTATE_DB_LOCK_TIMEOUT \/ --db-lock-timeout/);
  });

  it('a statement running past the statement timeout is cancelled', async () => {
    expect(sqlState(await errorOf(pool.query('select pg_sleep(5)')))).toBe('57014');
    expect((await pool.query('select 1 as one')).rows[0].one).toBe(1); // the connection lives on
  });

  it('a transaction left idle past the idle-in-transaction timeout is cut, and its locks go with it', async () => {
    await pool.query('create table held (id int primary key)');
    await pool.query('insert into held values (1)');
    const stuck = await pool.connect();
    stuck.on('error', () => undefined);
    try {
      await stuck.query('begin');
      await stuck.query('select * from held for update');
      await new Promise((r) => setTimeout(r, 1500)); // a hung process: nothing more is sent
      // The server ended that session: its row lock is gone, so another writer gets through.
      await pool.query('update held set id = 1');
      const err = await errorOf(stuck.query('select 1'));
      expect(String((err as Error).message)).toMatch(/idle-in-transaction|terminat|Connection/i);
    } finally {
      stuck.release(true);
    }
  });

  it('a lock wait past the lock timeout fails with 55P03', async () => {
    await pool.query('create table locked (id int)');
    const holder = await pool.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table locked in access exclusive mode');
      expect(sqlState(await errorOf(pool.query('select * from locked')))).toBe('55P03');
      await holder.query('rollback');
    } finally {
      holder.release();
    }
  });

  it('reach pg-boss, the snapshot pool, the leader connection and PeerDB connections', async () => {
    const boss: PgBoss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 2, logger, worker: false, limits: LIMITS });
    await boss.start();
    closers.push(() => boss.stop({ graceful: false }));
    const show = async (run: (sql: string) => Promise<{ rows: Record<string, string>[] }>) => {
      const { rows } = await run(
        `select current_setting('statement_timeout') as s, current_setting('idle_in_transaction_session_timeout') as i,
                current_setting('lock_timeout') as l`,
      );
      return rows[0];
    };
    const expected = { s: '700ms', i: '600ms', l: '300ms' };
    expect(await show((sql) => boss.getDb().executeSql(sql) as Promise<{ rows: Record<string, string>[] }>)).toEqual(expected);
    const snapshots = createSnapshotPool(db.url, logger, undefined, LIMITS);
    closers.push(() => snapshots.end());
    // The snapshot pool keeps its own, shorter read timeout; the other two limits are the settings'.
    expect(await show((sql) => snapshots.query(sql))).toMatchObject({ i: '600ms', l: '300ms' });
    const leadership = await tryLead(db.url, 'mirrorstate', 'limits-test', logger, LIMITS);
    closers.push(() => leadership!.release());
    expect(await show((sql) => leadership!.client.query(sql))).toEqual(expected);

    const catalog: PeerdbCatalog = await createPeerdbCatalog('limits');
    closers.push(() => catalog.drop());
    const peerdb = await connectPeerdb(catalog.readerUrl, logger, LIMITS);
    closers.push(() => peerdb.client.end());
    // PeerDB's reads keep the source's own statement timeout (30 s).
    expect(await show((sql) => peerdb.client.query(sql))).toEqual({ s: '30s', i: '600ms', l: '300ms' });
  });

  it('migrations run under their own statement timeout and give the connection back with the configured one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ms-migrations-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, '0001_slow.sql'), 'select pg_sleep(1.2); create table slow_done (id int);');
    const one = createPool(db.url, 1, 'limits-migrate', logger, undefined, LIMITS);
    closers.push(() => one.end());
    // A limit for migrations shorter than the migration: it fails, and nothing is recorded.
    await expect(migrate(one, 'limits_a', logger, dir, 300)).rejects.toThrow(/0001_slow.sql failed/);
    // None (the default): the slow migration completes, though it outlasts the connection's 700 ms.
    expect((await migrate(one, 'limits_b', logger, dir, 0)).map((m) => m.name)).toEqual(['0001_slow.sql']);
    const { rows } = await one.query<{ s: string }>(`select current_setting('statement_timeout') as s`);
    expect(rows[0]!.s).toBe('700ms');
  });
});
