/** The PeerDB source's pure parts: what changed, error classes, snapshot children, tails. */
import { describe, expect, it } from 'vitest';
import { classifyError } from '../../src/source/peerdb/classify.js';
import { decide, type Observation, parentOf, type PublishedState } from '../../src/source/peerdb/decide.js';
import { mergeTail, rfc3339 } from '../../src/source/peerdb/readPeerdb.js';
import { nextHoles, TAIL_LOOKBACK_IDS } from '../../src/source/peerdb/rows.js';

const NOW = '2026-11-21T10:00:40.000000Z';
const obs = (o: Partial<Observation> = {}): Observation => ({
  mirror: 'm', statusCode: 1, workflowId: 'm-peerflow', flowType: 'cdc', source: 's', destination: 'd',
  rowsSynced: 10, lagSeconds: 0, slotLagBytes: 1024, slotLagSampledAt: '2026-11-21T09:59:00.000000Z', slotWalStatus: 'reserved',
  statusSince: '2026-11-21T09:00:00.000000Z', errorAt: null, error: null, tables: null, ...o,
});
const pub = (o: Partial<PublishedState> = {}): PublishedState => ({
  mirror: 'm', status: 'running', workflowId: 'm-peerflow', flowType: 'cdc', source: 's', destination: 'd', errorClass: null,
  errorMessage: null, rowsSynced: 10, lagSeconds: 0, slotLagBytes: 1024, slotLagSampledAt: '2026-11-21T09:59:00.000000Z',
  slotWalStatus: 'reserved', enteredAt: null, tablesDigest: null, numbersAt: '2026-11-21T10:00:00.000000Z',
  observedAt: '2026-11-21T10:00:00.000000Z', seq: 0, dropped: false, ...o,
});
const NOW_MS = Date.parse(NOW);

describe('decide', () => {
  const cases: { name: string; o: Observation[]; p: PublishedState[]; now?: string; expect: Record<string, unknown>[] }[] = [
    { name: 'never published: everything', o: [obs()], p: [], expect: [{ mirror: 'm', status: 'running', rowsSynced: 10, slotLagBytes: 1024, observedAt: NOW, seq: 0 }] },
    { name: 'unchanged: nothing', o: [obs()], p: [pub()], expect: [] },
    { name: 'status changed: now', o: [obs({ statusCode: 2 })], p: [pub({ numbersAt: '2026-11-21T10:00:39.000000Z' })], expect: [{ status: 'paused' }] },
    { name: 'updated_at-only change is no change (status compared by value)', o: [obs()], p: [pub()], expect: [] },
    { name: 'error appeared: now', o: [obs({ error: { message: 'x', class: 'unknown' } })], p: [pub()], expect: [{ error: { message: 'x', class: 'unknown' } }] },
    { name: 'error cleared: now, without error', o: [obs()], p: [pub({ errorClass: 'auth', errorMessage: 'denied' })], expect: [{ status: 'running', error: undefined }] },
    { name: 'peer changed: now', o: [obs({ destination: 'd2' })], p: [pub()], expect: [{ destination: 'd2' }] },
    { name: 'numbers changed, last numbers 40 s old: now', o: [obs({ rowsSynced: 11 })], p: [pub()], expect: [{ rowsSynced: 11 }] },
    { name: 'numbers changed, last numbers 10 s old: not yet', o: [obs({ rowsSynced: 11 })], p: [pub({ numbersAt: '2026-11-21T10:00:30.000000Z' })], expect: [] },
    { name: 'wal_status changed: now, with the sample time', o: [obs({ slotWalStatus: 'unreserved', slotLagSampledAt: '2026-11-21T10:00:20.000000Z' })], p: [pub({ numbersAt: '2026-11-21T10:00:30.000000Z' })], expect: [{ slotWalStatus: 'unreserved', slotLagSampledAt: '2026-11-21T10:00:20.000000Z' }] },
    { name: 'new slot sample, last numbers 10 s old: not yet', o: [obs({ slotLagSampledAt: '2026-11-21T10:00:20.000000Z' })], p: [pub({ numbersAt: '2026-11-21T10:00:30.000000Z' })], expect: [] },
    { name: 'new slot sample, last numbers 40 s old: now, with its own time', o: [obs({ slotLagSampledAt: '2026-11-21T10:00:20.000000Z' })], p: [pub()], expect: [{ slotLagSampledAt: '2026-11-21T10:00:20.000000Z', slotWalStatus: 'reserved' }] },
    { name: 'xmin flow type changed: now', o: [obs({ flowType: 'xmin' })], p: [pub({ flowType: 'qrep', numbersAt: '2026-11-21T10:00:39.000000Z' })], expect: [{ flowType: 'xmin' }] },
    { name: 'error from before the entry into resync: gone', o: [obs({ statusCode: 9, statusSince: '2026-11-21T10:00:10.000000Z', errorAt: '2026-11-21T10:00:05.000000Z', error: { message: 'x', class: 'unknown' } })], p: [pub({ errorClass: 'unknown', errorMessage: 'x' })], expect: [{ status: 'resync', error: undefined }] },
    { name: 'error after the entry into snapshot: shown', o: [obs({ statusCode: 5, statusSince: '2026-11-21T10:00:10.000000Z', errorAt: '2026-11-21T10:00:15.000000Z', error: { message: 'x', class: 'unknown' } })], p: [pub()], expect: [{ status: 'snapshot', error: { message: 'x', class: 'unknown' } }] },
    { name: 'back to running: an error from before the remembered entry stays gone', o: [obs({ statusSince: '2026-11-21T10:00:30.000000Z', errorAt: '2026-11-21T10:00:05.000000Z', error: { message: 'x', class: 'unknown' } })], p: [pub({ status: 'snapshot', enteredAt: '2026-11-21T10:00:10.000000Z' })], expect: [{ status: 'running', error: undefined }] },
    { name: 'flows row gone: dropped once', o: [], p: [pub()], expect: [{ mirror: 'm', status: 'terminated', dropped: true }] },
    { name: 'already published as dropped: nothing', o: [], p: [pub({ dropped: true, status: 'terminated' })], expect: [] },
    { name: 'dropped and back (same name): everything', o: [obs()], p: [pub({ dropped: true, status: 'terminated' })], expect: [{ status: 'running', dropped: undefined }] },
    { name: 'clock not past the last version: same observedAt, next seq', o: [obs({ statusCode: 2 })], p: [pub({ observedAt: NOW, seq: 4 })], expect: [{ observedAt: NOW, seq: 5 }] },
    { name: 'clock set back: drop still newer', o: [], p: [pub({ observedAt: '2026-11-21T10:01:00.000000Z' })], expect: [{ observedAt: '2026-11-21T10:01:00.000000Z', seq: 1, dropped: true }] },
    { name: 'status 12: skipped', o: [obs({ statusCode: 12 })], p: [], expect: [] },
    { name: 'a skipped mirror is not dropped', o: [obs({ statusCode: -1 })], p: [pub()], expect: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decide(c.o, new Map(c.p.map((p) => [p.mirror, p])), c.now ?? NOW, NOW_MS);
      expect(d.publish.map((p) => p.update)).toEqual(c.expect.map((e) => expect.objectContaining(Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)))));
      for (const [i, e] of c.expect.entries()) for (const [k, v] of Object.entries(e)) if (v === undefined) expect(d.publish[i]!.update).not.toHaveProperty(k);
    });
  }

  it('skips, with reasons, a status outside 0–11 and a name the contract refuses; the others go on', () => {
    const d = decide([obs({ mirror: 'a', statusCode: 12 }), obs({ mirror: 'b\u0001' }), obs({ mirror: 'x'.repeat(256) }), obs({ mirror: 'ok' })], new Map(), NOW, NOW_MS);
    expect(d.skipped.map((s) => [s.mirror.slice(0, 3), s.reason])).toEqual([['a', 'status'], ['b\u0001', 'name'], ['xxx', 'name']]);
    expect(d.publish.map((p) => p.update.mirror)).toEqual(['ok']);
    expect(d.seen).toBe(4);
  });

  it('validates with MIRRORSTATE_MAX_FUTURE: PeerDB’s clock 10 minutes ahead passes a 15-minute limit, not the default', () => {
    const behind = NOW_MS - 10 * 60_000;
    expect(decide([obs()], new Map(), NOW, behind).skipped.map((s) => s.reason)).toEqual(['invalid']);
    const d = decide([obs()], new Map(), NOW, behind, 15 * 60_000);
    expect([d.skipped.length, d.publish.map((p) => p.update.mirror)]).toEqual([0, ['m']]);
  });

  it('restarts the 30 s numbers clock only when numbers moved', () => {
    const [withStatus] = decide([obs({ statusCode: 2 })], new Map([['m', pub()]]), NOW, NOW_MS).publish;
    expect(withStatus!.state.numbersAt).toBe('2026-11-21T10:00:00.000000Z');
    const [withNumbers] = decide([obs({ rowsSynced: 99 })], new Map([['m', pub()]]), NOW, NOW_MS).publish;
    expect(withNumbers!.state.numbersAt).toBe(NOW);
  });
});

describe('parentOf', () => {
  const mirrors = new Set(['orders', 'orders_eu', 'a']);
  const cases: [string, string | undefined][] = [
    ['clone_orders_public_t1_0b1c', 'orders'],
    ['clone_orders_eu_public_t1_0b1c', 'orders_eu'],
    ['clone_a_t_r', 'a'],
    ['orders', undefined],
    ['clone_unknown_t_r', undefined],
    ['clone_orders', undefined],
  ];
  for (const [flow, parent] of cases) it(`${flow} → ${parent}`, () => expect(parentOf(flow, mirrors)).toBe(parent));
});

describe('classifyError', () => {
  const cases: [string, string][] = [
    ['dial tcp 10.0.0.7:5432: connect: connection refused', 'connection'],
    ['failed to connect to `host=db user=peerdb`: server error (FATAL: password authentication failed for user "peerdb")', 'auth'],
    ['ERROR: replication slot "peerflow_slot_m" does not exist (SQLSTATE 42704)', 'replication_slot'],
    ['requested WAL segment 0000000100000A2B000000C1 has already been removed', 'replication_slot'],
    ['context deadline exceeded', 'timeout'],
    ['ERROR: column "amount" of relation "orders" does not exist', 'schema'],
    ['pq: could not extend file: No space left on device', 'resources'],
    ['something odd happened', 'unknown'],
  ];
  for (const [message, cls] of cases) it(`${cls}: ${message.slice(0, 40)}`, () => expect(classifyError(message)).toBe(cls));
});

describe('mergeTail', () => {
  it('keeps the newest row per key by (at, id), whatever order rows come in', () => {
    const memory = new Map([['s', { id: 5, at: '2026-01-01T00:00:05.000000Z', v: 'old' }]]);
    const merged = mergeTail(memory, [
      ['s', { id: 3, at: '2026-01-01T00:00:03.000000Z', v: 'older' }],
      ['s', { id: 9, at: '2026-01-01T00:00:09.000000Z', v: 'newest' }],
      ['s', { id: 7, at: '2026-01-01T00:00:07.000000Z', v: 'newer' }],
      ['t', { id: 8, at: '2026-01-01T00:00:08.000000Z', v: 't' }],
    ]);
    expect(merged.get('s')!.v).toBe('newest');
    expect(merged.get('t')!.v).toBe('t');
    expect(memory.get('s')!.v).toBe('old');
  });
});

describe('rfc3339', () => {
  const cases: [string, string][] = [
    ['2026-11-21 10:00:40', '2026-11-21T10:00:40.000000Z'],
    ['2026-11-21 10:00:40.5', '2026-11-21T10:00:40.500000Z'],
    ['2026-11-21 10:00:40.123456', '2026-11-21T10:00:40.123456Z'],
    ['2026-01-02 03:04:05.000007', '2026-01-02T03:04:05.000007Z'],
  ];
  for (const [pg, want] of cases) it(`${pg} → ${want}`, () => expect(rfc3339(pg)).toBe(want));
});

describe('nextHoles', () => {
  const cases: { name: string; holes: number[]; after: number; seen: number[]; top: number; want: number[] }[] = [
    { name: 'dense: none', holes: [], after: 10, seen: [11, 12, 13], top: 13, want: [] },
    { name: 'an id not seen below the top', holes: [], after: 10, seen: [11, 13], top: 13, want: [12] },
    { name: 'a hole filled', holes: [12], after: 13, seen: [12, 14], top: 14, want: [] },
    { name: 'a hole still open, nothing new', holes: [12], after: 13, seen: [], top: 13, want: [12] },
    { name: 'a hole out of the window', holes: [5], after: 5 + TAIL_LOOKBACK_IDS, seen: [6 + TAIL_LOOKBACK_IDS], top: 6 + TAIL_LOOKBACK_IDS, want: [] },
    { name: 'a long jump: only the window is kept', holes: [], after: 0, seen: [5000], top: 5000, want: Array.from({ length: TAIL_LOOKBACK_IDS - 1 }, (_, i) => 5000 - TAIL_LOOKBACK_IDS + 1 + i) },
  ];
  for (const c of cases) it(c.name, () => expect(nextHoles(c.holes, c.after, c.seen, c.top)).toEqual(c.want));
});
