/** The `tables` field of an update (docs/tables.md): parsed whole, or the update refused naming `tables[i].field`. */
import { describe, expect, it } from 'vitest';
import { TABLE_COLUMN_TYPES, TABLE_FIELDS, tableColumns, toTableView } from '../../src/catalog/tableFields.js';
import { MAX_TABLES_PER_UPDATE, parseUpdate } from '../../src/update.js';

const NOW = Date.parse('2026-12-05T12:00:00Z');
const base = { mirror: 'm', status: 'snapshot', observedAt: '2026-12-05T10:00:00Z' };
const errorsOf = (tables: unknown) => {
  const r = parseUpdate({ ...base, tables }, NOW);
  return r.ok ? [] : r.errors.map((e) => e.field);
};

describe('tables', () => {
  it('parses a whole entry, timestamps canonical, and leaves what an entry omits unknown', () => {
    const r = parseUpdate({
      ...base,
      tables: [
        {
          table: 'public.orders', rowsSynced: 120000, lastSyncedAt: '2026-12-05T10:00:00+01:00',
          snapshot: { partitions: 40, partitionsSynced: 12, rowsSynced: 30000, startedAt: '2026-12-05T09:00:00.1234567Z', finishedAt: null },
          error: { class: 'connection', message: 'boom' },
        },
        { table: 'public.items' },
      ],
    }, NOW);
    expect(r.ok && r.value.tables).toEqual([
      {
        table: 'public.orders', rowsSynced: 120000, lastSyncedAt: '2026-12-05T09:00:00.000000Z',
        snapshot: { partitions: 40, partitionsSynced: 12, rowsSynced: 30000, startedAt: '2026-12-05T09:00:00.123456Z', finishedAt: null },
        error: { class: 'connection', message: 'boom' },
      },
      { table: 'public.items', rowsSynced: null, lastSyncedAt: null, snapshot: null, error: null },
    ]);
  });

  it('is null when absent or null (the set stays as it was), and [] when empty (a mirror with no tables)', () => {
    for (const [tables, expected] of [[undefined, null], [null, null], [[], []]] as const) {
      const r = parseUpdate({ ...base, tables }, NOW);
      expect(r.ok && r.value.tables).toEqual(expected);
    }
  });

  it.each([
    ['not an array', { a: 1 }, ['tables']],
    ['an entry not an object', ['public.t'], ['tables[0]']],
    ['no table', [{ rowsSynced: 1 }], ['tables[0].table']],
    ['an empty name', [{ table: '' }], ['tables[0].table']],
    ['a name of 513 characters', [{ table: 'x'.repeat(513) }], ['tables[0].table']],
    ['a name of 512 characters', [{ table: 'x'.repeat(512) }], []],
    ['a control character', [{ table: 'a\tb' }], ['tables[0].table']],
    ['a name twice', [{ table: 'a' }, { table: 'b' }, { table: 'a' }], ['tables[2].table']],
    ['negative rows', [{ table: 'a' }, { table: 'b', rowsSynced: -1 }], ['tables[1].rowsSynced']],
    ['fractional rows', [{ table: 'a', rowsSynced: 1.5 }], ['tables[0].rowsSynced']],
    ['a bad lastSyncedAt', [{ table: 'a', lastSyncedAt: 'yesterday' }], ['tables[0].lastSyncedAt']],
    ['a snapshot not an object', [{ table: 'a', snapshot: 3 }], ['tables[0].snapshot']],
    ['more synced partitions than planned', [{ table: 'a', snapshot: { partitions: 2, partitionsSynced: 3 } }], ['tables[0].snapshot.partitionsSynced']],
    ['as many synced as planned', [{ table: 'a', snapshot: { partitions: 3, partitionsSynced: 3 } }], []],
    ['a bad snapshot start', [{ table: 'a', snapshot: { startedAt: 5 } }], ['tables[0].snapshot.startedAt']],
    ['a bad snapshot end', [{ table: 'a', snapshot: { finishedAt: '2026-12-05' } }], ['tables[0].snapshot.finishedAt']],
    ['snapshot rows beyond 2^53-1', [{ table: 'a', snapshot: { rowsSynced: 2 ** 53 } }], ['tables[0].snapshot.rowsSynced']],
    ['an error without message', [{ table: 'a', error: { class: 'x' } }], ['tables[0].error.message']],
    ['an error class in capitals', [{ table: 'a', error: { class: 'X', message: 'm' } }], ['tables[0].error.class']],
    ['nulls everywhere', [{ table: 'a', rowsSynced: null, lastSyncedAt: null, snapshot: null, error: null }], []],
  ])('%s', (_name, tables, fields) => {
    expect(errorsOf(tables)).toEqual(fields);
  });

  it(`takes ${MAX_TABLES_PER_UPDATE} tables and refuses one more`, () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ table: `t${i}` }));
    expect(errorsOf(many(MAX_TABLES_PER_UPDATE))).toEqual([]);
    expect(errorsOf(many(MAX_TABLES_PER_UPDATE + 1))).toEqual(['tables']);
  });

  it('a bad entry makes the whole update invalid, its other fields still named', () => {
    const r = parseUpdate({ ...base, rowsSynced: -5, tables: [{ table: 'ok' }, { table: 'bad', snapshot: { partitions: -1 } }] }, NOW);
    expect(r.ok ? [] : r.errors.map((e) => e.field)).toEqual(['rowsSynced', 'tables[1].snapshot.partitions']);
  });
});

describe('slot sample fields', () => {
  it.each([
    [{ slotLagSampledAt: '2026-12-05T09:59:00Z' }, []],
    [{ slotLagSampledAt: 'now' }, ['slotLagSampledAt']],
    [{ slotWalStatus: 'unreserved' }, []],
    [{ slotWalStatus: 'lost' }, []],
    [{ slotWalStatus: 'UNRESERVED' }, ['slotWalStatus']],
    [{ slotWalStatus: 'gone' }, ['slotWalStatus']],
  ])('%j', (fields, expected) => {
    const r = parseUpdate({ ...base, ...fields }, NOW);
    expect(r.ok ? [] : r.errors.map((e) => e.field)).toEqual(expected);
  });
});

describe('a table\'s view and row (catalog/tableFields.ts)', () => {
  const unknown = Object.fromEntries(TABLE_FIELDS.map((f) => [f.column, null]));
  const row = (values: Record<string, string | null>) => ({ table_name: 't', ...unknown, ...values, updated_at: 'u' });
  it.each([
    ['nothing known: groups null', {}, { rowsSynced: null, lastSyncedAt: null, snapshot: null, error: null }],
    ['one value of a group shows the group, the rest null', { snapshot_rows_synced: '3' },
      { snapshot: { partitions: null, partitionsSynced: null, rowsSynced: 3, startedAt: null, finishedAt: null }, error: null }],
    ['an error without its class reads as unknown, without its message as empty', { error_message: 'm' }, { error: { class: 'unknown', message: 'm' } }],
    ['', { error_class: 'c' }, { error: { class: 'c', message: '' } }],
    ['bigints as numbers', { rows_synced: '9007199254740991', snapshot_partitions: '0' }, { rowsSynced: 9007199254740991, snapshot: expect.objectContaining({ partitions: 0 }) }],
  ])('%s', (_, values, expected) => {
    expect(toTableView(row(values))).toMatchObject({ table: 't', updatedAt: 'u', ...expected });
  });

  it('keeps the read API\'s key order', () => {
    expect(Object.keys(toTableView(row({ snapshot_partitions: '1' })))).toEqual(['table', 'rowsSynced', 'lastSyncedAt', 'snapshot', 'error', 'updatedAt']);
    expect(Object.keys(toTableView(row({ snapshot_partitions: '1' })).snapshot!)).toEqual(['partitions', 'partitionsSynced', 'rowsSynced', 'startedAt', 'finishedAt']);
  });

  it('an entry and the view it comes back as carry each field at the same path', () => {
    const entry = {
      table: 't', rowsSynced: 1, lastSyncedAt: 'a', error: { class: 'c', message: 'm' },
      snapshot: { partitions: 2, partitionsSynced: 1, rowsSynced: 3, startedAt: 's', finishedAt: 'f' },
    };
    // One entry's columns are one-element array literals: `{"m"}`, `{2}`, `{NULL}`.
    const written = tableColumns([['m', [entry]]]).map((literal) => literal.slice(1, -1).replace(/^"(.*)"$/, '$1'));
    const asRead = Object.fromEntries(['mirror', 'table_name', ...TABLE_FIELDS.map((f) => f.column)].map((k, i) => [k, written[i] === 'NULL' ? null : written[i]]));
    expect(written).toHaveLength(TABLE_COLUMN_TYPES.length);
    expect(toTableView({ ...asRead, updated_at: 'u' })).toEqual({ ...entry, updatedAt: 'u' });
  });
});
