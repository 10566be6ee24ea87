import { describe, expect, it } from 'vitest';
import { parseMessage, parseStatus, parseTimestamp, parseUpdate, STATUSES } from '../../src/update.js';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const base = { mirror: 'm', status: 'running', observedAt: '2026-11-21T10:00:00Z' };
const errorsOf = (input: unknown) => {
  const r = parseUpdate(input, NOW);
  return r.ok ? [] : r.errors.map((e) => e.field);
};

describe('statuses', () => {
  it.each(STATUSES.map((s, code) => [s, code] as const))('%s (code %i) in all four spellings', (status, code) => {
    for (const spelling of [status, status.toUpperCase(), `STATUS_${status.toUpperCase()}`, code]) {
      expect(parseStatus(spelling)).toBe(status);
    }
  });
  it.each([['Running'], ['status_running'], ['RUN'], [12], [-1], [1.5], ['1'], [null], [true]])('rejects %j', (value) => {
    expect(parseStatus(value)).toBeUndefined();
  });
  it('keeps PeerDB codes', () => {
    expect(STATUSES.indexOf('failed')).toBe(10);
    expect(STATUSES.indexOf('modifying')).toBe(11);
  });
});

describe('timestamps', () => {
  it.each([
    ['2026-11-21T10:00:00Z', '2026-11-21T10:00:00.000000Z'],
    ['2026-11-21t10:00:00z', '2026-11-21T10:00:00.000000Z'],
    ['2026-11-21T10:00:00.5Z', '2026-11-21T10:00:00.500000Z'],
    ['2026-11-21T10:00:00.123456789Z', '2026-11-21T10:00:00.123456Z'],
    ['2026-11-21T10:00:00.999999999Z', '2026-11-21T10:00:00.999999Z'],
    ['2026-11-21T11:30:00.000001+01:30', '2026-11-21T10:00:00.000001Z'],
    ['2026-11-20T23:00:00-11:00', '2026-11-21T10:00:00.000000Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000000Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000000Z'],
  ])('%s → %s', (input, canonical) => {
    const r = parseTimestamp(input);
    expect(r.ok && r.canonical).toBe(canonical);
  });
  it.each([
    ['2026-11-21T10:00:00'], ['2026-11-21 10:00:00Z'], ['2026-11-21'], ['2026-02-29T00:00:00Z'], ['2026-13-01T00:00:00Z'],
    ['2026-11-21T24:00:00Z'], ['2026-11-21T10:00:60Z'], ['2026-11-21T10:00:00+24:00'], ['2026-11-21T10:00:00.Z'],
    ['1763719200'], ['0000-12-31T23:00:00Z'], ['0001-01-01T00:00:00+01:00'],
  ])('rejects %s', (input) => {
    expect(parseTimestamp(input).ok).toBe(false);
  });
  it('takes a field already in canonical form exactly as the full parse does, valid or not', () => {
    // The fields other than observedAt take canonical text without the full parse (update.ts,
    // isCanonical): every date and time a canonical-looking string can spell must be judged alike.
    const pad = (n: number, width: number) => String(n).padStart(width, '0');
    const seen = { valid: 0, invalid: 0 };
    const check = (text: string) => {
      const full = parseTimestamp(text);
      const r = parseUpdate({ ...base, slotLagSampledAt: text }, NOW);
      expect(r.ok ? r.value.slotLagSampledAt : null, text).toBe(full.ok ? full.canonical : null);
      seen[full.ok ? 'valid' : 'invalid']++;
    };
    for (const year of [0, 1, 99, 100, 1900, 2000, 2024, 2026, 2100, 9999]) {
      for (let month = 0; month <= 13; month++) {
        for (const day of [0, 1, 28, 29, 30, 31, 32]) check(`${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T12:00:00.000000Z`);
      }
    }
    for (const [h, m, sec] of [[0, 0, 0], [23, 59, 59], [24, 0, 0], [23, 60, 0], [23, 59, 60], [99, 99, 99]]) {
      check(`2026-11-21T${pad(h!, 2)}:${pad(m!, 2)}:${pad(sec!, 2)}.123456Z`);
    }
    for (const text of ['2026-11-21T10:00:00.123456z', '2026-11-21t10:00:00.123456Z', '2026-11-21T10:00:00.12345aZ', '2026-11-21T10:00:00,123456Z', '2026-1a-21T10:00:00.123456Z']) {
      check(text);
    }
    expect(seen.valid).toBeGreaterThan(100);
    expect(seen.invalid).toBeGreaterThan(100);
  });
  it('sorts canonical strings like instants', () => {
    const a = parseTimestamp('2026-11-21T10:00:00.000001Z');
    const b = parseTimestamp('2026-11-21T11:00:00.000000+01:00');
    expect(a.ok && b.ok && b.canonical < a.canonical).toBe(true);
  });
});

describe('parseUpdate', () => {
  it('normalizes a full update and keeps the payload as received', () => {
    const input = {
      ...base, status: 'STATUS_FAILED', observedAt: '2026-11-21T11:00:00.123456789+01:00', seq: 3, workflowId: 'wf', runId: 'r',
      flowType: 'cdc', source: 'pg', destination: 'sf', rowsSynced: 10, lagSeconds: 1.5, slotLagBytes: 4096,
      slotLagSampledAt: '2026-11-21T09:59:00+00:00', slotWalStatus: 'extended', error: { message: 'x' }, dropped: true, extra: { a: 1 },
    };
    const r = parseUpdate(input, NOW);
    expect(r).toEqual({
      ok: true,
      value: {
        mirror: 'm', status: 'failed', observedAt: '2026-11-21T10:00:00.123456Z', seq: 3, workflowId: 'wf', runId: 'r', flowType: 'cdc',
        source: 'pg', destination: 'sf', rowsSynced: 10, lagSeconds: 1.5, slotLagBytes: 4096,
        slotLagSampledAt: '2026-11-21T09:59:00.000000Z', slotWalStatus: 'extended', error: { message: 'x', class: 'unknown' }, tables: null,
        dropped: true, payload: input,
      },
    });
  });
  it('treats null like an absent optional field', () => {
    const r = parseUpdate({ ...base, seq: null, rowsSynced: null, slotLagBytes: null, error: null, dropped: null, flowType: null }, NOW);
    expect(r.ok && [r.value.seq, r.value.rowsSynced, r.value.slotLagBytes, r.value.error, r.value.dropped, r.value.flowType]).toEqual([0, null, null, null, false, null]);
  });
  it.each([
    [{ status: 'running', observedAt: base.observedAt }, ['mirror']],
    [{ ...base, mirror: '' }, ['mirror']],
    [{ ...base, mirror: 'x'.repeat(256) }, ['mirror']],
    [{ ...base, mirror: '🚀'.repeat(255) }, []],
    [{ ...base, mirror: `quote " back \\ space ünï` }, []],
    [{ ...base, mirror: 'new\nline' }, ['mirror']],
    [{ ...base, mirror: 'del\u007f' }, ['mirror']],
    [{ ...base, mirror: 'c1\u0085' }, ['mirror']],
    [{ ...base, mirror: 5 }, ['mirror']],
    [{ ...base, status: undefined }, ['status']],
    [{ ...base, status: 'sleeping' }, ['status']],
    [{ ...base, observedAt: undefined }, ['observedAt']],
    [{ ...base, observedAt: 1763719200 }, ['observedAt']],
    [{ ...base, observedAt: '2026-11-21T12:05:01Z' }, ['observedAt']],
    [{ ...base, observedAt: '2026-11-21T12:04:59Z' }, []],
    [{ ...base, seq: -1 }, ['seq']],
    [{ ...base, seq: 1.5 }, ['seq']],
    [{ ...base, seq: 2 ** 53 }, ['seq']],
    [{ ...base, seq: 2 ** 53 - 1 }, []],
    [{ ...base, seq: '1' }, ['seq']],
    [{ ...base, workflowId: 'w'.repeat(256) }, ['workflowId']],
    [{ ...base, flowType: 'CDC' }, ['flowType']],
    [{ ...base, flowType: 'a'.repeat(33) }, ['flowType']],
    [{ ...base, rowsSynced: -1 }, ['rowsSynced']],
    [{ ...base, lagSeconds: -0.1 }, ['lagSeconds']],
    [{ ...base, lagSeconds: '1' }, ['lagSeconds']],
    [{ ...base, slotLagBytes: -1 }, ['slotLagBytes']],
    [{ ...base, slotLagBytes: 1.5 }, ['slotLagBytes']],
    [{ ...base, slotLagBytes: '1' }, ['slotLagBytes']],
    [{ ...base, slotLagBytes: 0 }, []],
    [{ ...base, error: 'boom' }, ['error']],
    [{ ...base, error: { class: 'x' } }, ['error.message']],
    [{ ...base, error: { message: 'm', class: 'Bad Class' } }, ['error.class']],
    [{ ...base, error: { message: 'm'.repeat(8193) } }, ['error.message']],
    [{ ...base, dropped: 'yes' }, ['dropped']],
    [{ ...base, extra: 'a\u0000b' }, ['extra']],
    [{ ...base, extra: { 'k\u0000': 1 } }, ['extra.k\u0000']],
    [{ ...base, extra: { list: ['ok', '\ud800'] } }, ['extra.list[1]']],
    [{ mirror: 1, status: 'x', observedAt: 'y', seq: -1 }, ['mirror', 'status', 'observedAt', 'seq']],
  ])('%j → errors on %j', (input, fields) => {
    expect(errorsOf(input)).toEqual(fields);
  });
  it.each([
    // [observedAt, maxFutureMs (undefined: the 5-minute default), accepted?, the reason when refused]
    ['2026-11-21T12:05:00Z', undefined, true, ''],
    ['2026-11-21T12:05:00.000001Z', undefined, false, 'is more than 5 minutes in the future of the daemon clock'],
    ['2026-11-21T13:00:00Z', 3_600_000, true, ''],
    ['2026-11-21T13:00:01Z', 3_600_000, false, 'is more than 1 hour in the future of the daemon clock'],
    ['2026-11-21T12:00:31Z', 30_000, false, 'is more than 30 seconds in the future of the daemon clock'],
    ['2026-11-21T12:01:31Z', 90_000, false, 'is more than 90 seconds in the future of the daemon clock'],
    ['2026-11-23T12:00:01Z', 2 * 86_400_000, false, 'is more than 2 days in the future of the daemon clock'],
  ])('observedAt %s with a future limit of %s ms: accepted %s', (observedAt, maxFutureMs, accepted, message) => {
    const r = parseUpdate({ ...base, observedAt }, NOW, maxFutureMs);
    expect(r.ok).toBe(accepted);
    if (!r.ok) expect(r.errors).toEqual([{ field: 'observedAt', message }]);
    expect(parseMessage({ updates: [{ ...base, observedAt }] }, NOW, maxFutureMs)).toMatchObject({ ok: true, elements: [{ result: { ok: accepted } }] });
  });
  it('answers a bigint or a symbol with a field error, not a crash', () => {
    expect(errorsOf({ ...base, seq: 1n })).toEqual(['seq']);
    expect(errorsOf({ ...base, mirror: Symbol('m') })).toEqual(['mirror']);
  });
  it('names nesting deeper than 64 levels as the fault, not a character', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 70; i++) deep = [deep];
    const r = parseUpdate({ ...base, extra: deep }, NOW);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors[0]?.message).toBe('nests deeper than 64 levels');
  });
  it.each([[null], [[base]], ['text'], [42]])('rejects %j as not an object', (input) => {
    expect(errorsOf(input)).toEqual(['']);
  });
});

describe('parseMessage', () => {
  it('takes one update or { updates: [...] } with indexes', () => {
    const one = parseMessage(base, NOW);
    expect(one.ok && one.elements.map((e) => e.index)).toEqual([null]);
    const many = parseMessage({ updates: [base, { ...base, status: 'x' }] }, NOW);
    expect(many.ok && many.elements.map((e) => [e.index, e.result.ok])).toEqual([[0, true], [1, false]]);
  });
  it.each([[[base]], ['x'], [null], [{ updates: 'x' }], [{ updates: Array(1001).fill(base) }]])('rejects %j whole', (data) => {
    expect(parseMessage(data, NOW).ok).toBe(false);
  });
  it('accepts exactly 1000 updates', () => {
    const r = parseMessage({ updates: Array(1000).fill(base) }, NOW);
    expect(r.ok && r.elements.length).toBe(1000);
  });
});
