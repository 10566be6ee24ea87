/**
 * flows.config_proto (config.ts): real protobuf encodings, written as PeerDB's handler writes them,
 * decide the slot a CDC mirror's slot lag comes from and whether a QRep mirror is an XMin mirror;
 * bytes that do not decode leave the mirror as without a config. Then the slot sample's own time and
 * wal_status. Read as the SELECT-only role, first through the source's read and mapping, then through
 * the daemon as a process.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { decodeFlowConfig } from '../../src/source/peerdb/config.js';
import { decide, observe, type Observation } from '../../src/source/peerdb/decide.js';
import { connectPeerdb } from '../../src/source/peerdb/poller.js';
import { MIB, readPeerdb, type Tails } from '../../src/source/peerdb/readPeerdb.js';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cdcConfig, createPeerdbCatalog, type PeerdbCatalog, qrepConfig } from '../helpers/peerdb.js';
import { scrape, seriesValue } from '../helpers/scrape.js';

const QUERY = 'select * from events where {{.start}} <= id and id < {{.end}}';

describe('config_proto', () => {
  let catalog: PeerdbCatalog;
  let client: pg.Client;
  let shape: Awaited<ReturnType<typeof connectPeerdb>>['shape'];
  let tails: Tails | null = null;
  let undecodable: { mirror: string; reason: string }[] = [];
  const poll = async (): Promise<Map<string, Observation>> => {
    const snapshot = await readPeerdb(client, shape, tails);
    tails = snapshot.tails;
    undecodable = snapshot.undecodable;
    return new Map(observe(snapshot).map((o) => [o.mirror, o]));
  };
  const sql = (text: string, values: unknown[] = []) => catalog.db.pool.query(text, values);

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('config');
    const p = catalog.peerdb;
    await p.createFlow('custom', { status: 1, config: cdcConfig('custom', { slot: 'my_own_slot' }) });
    await p.createFlow('plain', { status: 1 });
    await p.createFlow('xmin_events', { query: QUERY, config: qrepConfig('xmin_events', QUERY, 'xmin') });
    await p.createFlow('by_id', { query: QUERY, config: qrepConfig('by_id', QUERY, 'id') });
    await p.createFlow('nexus_sql', { query: QUERY, config: null });
    // A truncated message (a length-delimited field 1 whose bytes are missing) does not decode.
    await p.createFlow('garbled', { status: 1, config: Uint8Array.from([0x0a, 0x10, 0x61]) });
    // The default slot of `custom` also has samples: reading it would be the wrong slot.
    await p.slotSample('custom', 900);
    await p.slotSample('custom', 3, { slot: 'my_own_slot', agoSeconds: 7200, walStatus: 'unreserved' });
    await p.slotSample('plain', 5);
    await p.slotSample('garbled', 11);
    // A slot no mirror names yet: its sample predates the leader's first poll, so the incremental
    // tail never sees it; only a lookup by name finds it once a config names the slot.
    await p.slotSample('plain', 42, { slot: 'moved_slot', agoSeconds: 600 });
    // What PeerDB records where PostgreSQL reports no state: 'unknown' before PostgreSQL 13, and an
    // empty string for a NULL wal_status (a slot without restart_lsn).
    await p.createFlow('pg12_source', { status: 1 });
    await p.slotSample('pg12_source', 6, { walStatus: 'unknown' });
    await p.createFlow('no_restart_lsn', { status: 1 });
    await p.slotSample('no_restart_lsn', 7, { walStatus: '' });
    ({ client, shape } = await connectPeerdb(catalog.readerUrl, createLogger('silent')));
  });
  afterAll(async () => {
    await client?.end();
    await catalog?.drop();
  });

  it('decodes the fields it needs and skips the rest; names why bytes do not decode', () => {
    expect(decodeFlowConfig(cdcConfig('a', { slot: 's1' }), true)).toEqual({ slotName: 's1', watermarkColumn: null, undecodable: null });
    expect(decodeFlowConfig(cdcConfig('a'), true)).toEqual({ slotName: null, watermarkColumn: null, undecodable: null });
    expect(decodeFlowConfig(qrepConfig('a', QUERY, 'xmin'), false)).toEqual({ slotName: null, watermarkColumn: 'xmin', undecodable: null });
    expect(decodeFlowConfig(null, false)).toEqual({ slotName: null, watermarkColumn: null, undecodable: null });
    expect(decodeFlowConfig(Uint8Array.from([0x0a, 0x10, 0x61]), true).undecodable).toMatch(/range/);
  });

  it('first poll: slot lag from the slot the config names, with that sample’s own time and wal_status; xmin; fallback', async () => {
    const o = await poll();
    const custom = o.get('custom')!;
    expect(custom.slotLagBytes).toBe(3 * MIB);
    expect(custom.slotWalStatus).toBe('unreserved');
    // Two hours old, and published as two hours old.
    expect(Date.now() - Date.parse(custom.slotLagSampledAt!)).toBeGreaterThan(7000_000);
    expect(o.get('plain')).toMatchObject({ slotLagBytes: 5 * MIB, slotWalStatus: 'reserved', flowType: 'cdc' });
    expect(o.get('xmin_events')!.flowType).toBe('xmin');
    expect(o.get('by_id')!.flowType).toBe('qrep');
    expect(o.get('nexus_sql')!.flowType).toBe('qrep');
    // Undecodable: as without a config (PeerDB's default slot), and said once.
    expect(o.get('garbled')).toMatchObject({ flowType: 'cdc', slotLagBytes: 11 * MIB });
    expect(undecodable).toEqual([{ mirror: 'garbled', reason: expect.stringMatching(/range/) }]);
  });

  it('a wal_status that is no state of PostgreSQL is left out, and the rest of the mirror published', async () => {
    const o = await poll();
    expect(o.get('pg12_source')).toMatchObject({ slotLagBytes: 6 * MIB, slotWalStatus: null });
    expect(o.get('no_restart_lsn')).toMatchObject({ slotLagBytes: 7 * MIB, slotWalStatus: null });
    const decision = decide([o.get('pg12_source')!, o.get('no_restart_lsn')!], new Map(), new Date().toISOString());
    expect(decision.skipped).toEqual([]);
    expect(decision.publish.map((p) => p.update)).toEqual([
      expect.objectContaining({ mirror: 'pg12_source', status: 'running', slotLagBytes: 6 * MIB }),
      expect.objectContaining({ mirror: 'no_restart_lsn', status: 'running', slotLagBytes: 7 * MIB }),
    ]);
    expect(decision.publish.every((p) => !('slotWalStatus' in p.update))).toBe(true);
  });

  it('later polls: the config read again only when the row changed; a slot named later is looked up', async () => {
    await poll();
    expect(undecodable).toEqual([]);
    // PeerDB edits the config to another slot (UPDATE flows SET config_proto = $1 WHERE name = $2,
    // updated_at untouched).
    await sql(`update flows set config_proto = $1 where name = 'plain'`, [Buffer.from(cdcConfig('plain', { slot: 'moved_slot' }))]);
    const o = await poll();
    expect(o.get('plain')).toMatchObject({ slotLagBytes: 42 * MIB });
    await sql(`update flows set config_proto = $1 where name = 'by_id'`, [Buffer.from(qrepConfig('by_id', QUERY, 'xmin'))]);
    expect((await poll()).get('by_id')!.flowType).toBe('xmin');
    await catalog.peerdb.slotSample('custom', 4, { slot: 'my_own_slot', walStatus: 'lost' });
    expect((await poll()).get('custom')).toMatchObject({ slotLagBytes: 4 * MIB, slotWalStatus: 'lost' });
  });
});

describe('config_proto through the daemon', () => {
  let catalog: PeerdbCatalog;
  let ms: TestDatabase;
  let daemon: DaemonProcess;

  beforeAll(async () => {
    catalog = await createPeerdbCatalog('config_e2e');
    ms = await createTestDatabase('peerdb_config');
    const p = catalog.peerdb;
    await p.createFlow('custom', { status: 1, config: cdcConfig('custom', { slot: 'my_own_slot' }) });
    await p.createFlow('xmin_events', { query: QUERY, config: qrepConfig('xmin_events', QUERY, 'xmin') });
    await p.createFlow('garbled', { status: 1, config: Uint8Array.from([0x0a, 0x10, 0x61]) });
    await p.slotSample('custom', 900);
    await p.slotSample('custom', 3, { slot: 'my_own_slot' });
    daemon = await startDaemon({
      databaseUrl: ms.url,
      env: { MIRRORSTATE_PEERDB_URL: catalog.readerUrl, MIRRORSTATE_PEERDB_POLL_INTERVAL: '1s', MIRRORSTATE_LOG_LEVEL: 'debug' },
    });
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await ms?.drop();
    await catalog?.drop();
  });

  it('publishes the custom slot’s lag and the xmin flow type; logs an undecodable config once', async () => {
    await waitFor('the mirrors on /metrics', async () => seriesValue(await scrape(daemon.url), 'peerdb_mirror_slot_lag_bytes', { mirror: 'custom' }) !== undefined);
    const text = await scrape(daemon.url);
    expect(seriesValue(text, 'peerdb_mirror_slot_lag_bytes', { mirror: 'custom' })).toBe(3 * MIB);
    expect(text).toMatch(/peerdb_mirror_info\{mirror="xmin_events",flow_type="xmin",/);
    expect(text).toMatch(/peerdb_mirror_info\{mirror="garbled",flow_type="cdc",/);
    // Several polls later, still one line.
    const polls = () => (daemon.output().match(/"msg":"PeerDB poll"/g) ?? []).length;
    const seen = polls();
    await waitFor('three more polls', () => polls() >= seen + 3);
    expect(daemon.output().match(/config_proto does not decode/g)).toHaveLength(1);
    expect(daemon.output()).toMatch(/"mirror":"garbled".*config_proto does not decode/);
  });
});
