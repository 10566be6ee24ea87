/**
 * The mirror's reported values are declared once (src/catalog/mirrorFields.ts). This keeps the
 * places that are not derived from the declaration in step with it (the columns the migrations
 * make, the producer's UpdateInput type), and walks every declared field through the whole path,
 * so a new line in the declaration is tested without a new test: parsed from an update, written by
 * a batch, kept or cleared by an update that omits it, answered by the read API, read by /metrics,
 * shown by `mirrorstate status MIRROR`.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { applyBatch } from '../../src/catalog/applyBatch.js';
import { migrate } from '../../src/catalog/migrate.js';
import { type FieldCheck, MIRROR_FIELD_LIST, type MirrorFieldName, type SqlType } from '../../src/catalog/mirrorFields.js';
import { readMirror } from '../../src/catalog/readMirror.js';
import { clientExecutor } from '../../src/catalog/sql.js';
import { label, printStatus } from '../../src/cli/status.js';
import { inTransaction } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { MIRROR_FAMILIES } from '../../src/metrics/families.js';
import { mirrorRowColumns, readMirrorRows } from '../../src/metrics/readMirrorRows.js';
import { NO_SHARDING } from '../../src/metrics/shard.js';
import type { UpdateInput } from '../../src/publish.js';
import { parseUpdate, type StateUpdate } from '../../src/update.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const SCHEMA = 'fields_test';
let db: TestDatabase;

/** Per check kind: a value it accepts, one it refuses, and how PostgreSQL's own types name the column. */
const SAMPLES: Record<FieldCheck, { good: unknown; bad: unknown }> = {
  name: { good: 'name-1', bad: 42 },
  flowType: { good: 'cdc', bad: 'Not A Type' },
  count: { good: 9_007_199_254_740_991, bad: -1 },
  seconds: { good: 1.25, bad: Number.POSITIVE_INFINITY },
  timestamp: { good: '2026-12-05T10:00:00.123456Z', bad: '2026-12-05 10:00' },
  walStatus: { good: 'unreserved', bad: 'RESERVED' },
};
const PG_TYPE: Record<SqlType, string> = { text: 'text', bigint: 'bigint', float8: 'double precision', timestamptz: 'timestamp with time zone' };
/** How /metrics prints a sample value read as that SQL type. */
const METRICS_TEXT: Record<SqlType, (value: unknown) => unknown> = {
  text: (v) => v,
  bigint: (v) => String(v),
  float8: (v) => v,
  // Epoch seconds with the microseconds, as PostgreSQL's extract(epoch …) prints them.
  timestamptz: (v) => `${Math.floor(Date.parse(String(v)) / 1000)}.${/\.(\d{6})Z$/.exec(String(v))?.[1] ?? '000000'}`,
};

function parse(fields: Record<string, unknown>): StateUpdate {
  const r = parseUpdate({ mirror: 'm', status: 'running', ...fields });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}
/** What `mirrorstate status MIRROR` prints for the mirror. */
async function status(mirror: string): Promise<string> {
  let text = '';
  await printStatus(db.pool, SCHEMA, mirror, new Writable({ write: (chunk: Buffer, _enc, done) => { text += chunk.toString(); done(); } }));
  return text;
}
const write = (batch: StateUpdate[]) => inTransaction(db.pool, 'begin', (c) => applyBatch(clientExecutor(c), SCHEMA, batch));

beforeAll(async () => {
  db = await createTestDatabase('fields');
  await migrate(db.pool, SCHEMA, createLogger('silent'));
});
afterAll(async () => db?.drop());

describe('the declared mirror fields', () => {
  it('are the values of the producer\'s UpdateInput besides the identity, the version, error and dropped', () => {
    expectTypeOf<Exclude<keyof UpdateInput, 'mirror' | 'status' | 'observedAt' | 'seq' | 'error' | 'tables' | 'dropped'>>()
      .toEqualTypeOf<MirrorFieldName>();
  });

  it('each have the column the migrations make, of the declared type', async () => {
    const { rows } = await db.pool.query<{ column_name: string; data_type: string }>(
      `select column_name, data_type from information_schema.columns where table_schema = $1 and table_name = 'mirrors'`,
      [SCHEMA],
    );
    const types = new Map(rows.map((r) => [r.column_name, r.data_type]));
    for (const f of MIRROR_FIELD_LIST) expect([f.name, types.get(f.column)]).toEqual([f.name, PG_TYPE[f.sql]]);
  });

  it('are each checked: a bad value is refused naming the field', () => {
    for (const f of MIRROR_FIELD_LIST) {
      const r = parseUpdate({ mirror: 'm', status: 'running', observedAt: '2026-11-21T10:00:00Z', [f.name]: SAMPLES[f.check].bad });
      expect(r.ok ? [] : r.errors.map((e) => e.field)).toEqual([f.name]);
    }
  });

  it.each(MIRROR_FIELD_LIST.map((f) => [f.name, f] as const))(
    '%s is written, kept or cleared when omitted as declared, answered and exported',
    async (name, f) => {
      const mirror = `m_${name}`;
      const value = SAMPLES[f.check].good;
      await write([parse({ mirror, observedAt: '2026-11-21T10:00:00Z', [name]: value })]);
      const first = await readMirror(db.pool, SCHEMA, mirror, { events: 0 });
      expect(first?.mirror[name]).toEqual(value);
      const [row] = await inTransaction(db.pool, 'begin', (c) => readMirrorRows(c, SCHEMA, [mirror], NO_SHARDING, mirrorRowColumns(SCHEMA, MIRROR_FAMILIES)));
      const exported = (row as unknown as Record<string, unknown>)[f.column];
      expect(exported).toEqual(f.metrics ? METRICS_TEXT[f.sql](value) : undefined);

      await write([parse({ mirror, observedAt: '2026-11-21T10:00:01Z' })]);
      const second = await readMirror(db.pool, SCHEMA, mirror, { events: 0 });
      expect(second?.mirror.observedAt).toBe('2026-11-21T10:00:01.000000Z');
      expect(second?.mirror[name]).toEqual(f.omitted === 'kept' ? value : null);
    },
  );

  it('are each shown by `mirrorstate status MIRROR`, with the value', async () => {
    const mirror = 'm_every_field';
    const values = Object.fromEntries(MIRROR_FIELD_LIST.map((f) => [f.name, SAMPLES[f.check].good]));
    await write([parse({ mirror, observedAt: '2026-11-21T10:00:00Z', ...values })]);
    const text = await status(mirror);
    // A line of the field table is the label, padding, the value.
    const lines = new Set(text.split('\n').map((line) => line.split(/ {2,}/).join(' ')));
    const missing = MIRROR_FIELD_LIST.filter((f) => !lines.has(`${label(f.name)} ${String(values[f.name])}`));
    expect(missing.map((f) => f.name)).toEqual([]);
  });
});
