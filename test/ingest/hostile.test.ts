/**
 * Hostile input on POST /api/v1/updates: deep nesting, huge strings, wrong types, bytes that are
 * not UTF-8, and a body that never ends. Each is refused with the right answer, enqueues nothing,
 * and leaves the daemon serving everybody else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonProcess, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { logJobs, loggedJobs } from '../helpers/queue.js';
import { get, post, stream, update } from './client.js';

/** What the ingest route allows a stalled body (src/http/ingest.ts BODY_IDLE_TIMEOUT_MS). */
const BODY_IDLE_TIMEOUT_MS = 10_000;

let db: TestDatabase;
let daemon: DaemonProcess;

beforeAll(async () => {
  db = await createTestDatabase('ingest_hostile');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_INGEST_TOKEN: 'test-token-0123456789' } });
  await logJobs(db.pool);
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

async function expectRefused(body: unknown, status: number) {
  const before = await loggedJobs(db.pool);
  const answer = await post(daemon.url, body);
  expect(answer.status).toBe(status);
  expect(typeof answer.json?.error).toBe('string');
  expect(await loggedJobs(db.pool)).toBe(before);
  return answer;
}

function fields(answer: { json: { errors?: { index: number; field: string }[] } }): string[] {
  return (answer.json.errors ?? []).map((e) => `${e.index}:${e.field}`).sort();
}

describe('deep nesting', () => {
  it('400 for a body of nothing but brackets, just under 1 MiB', async () => {
    const depth = 500_000;
    await expectRefused(`${'['.repeat(depth)}${']'.repeat(depth)}`, 400);
  });

  it('400 for an unterminated nest of objects', async () => {
    await expectRefused('{"a":'.repeat(200_000), 400);
  });

  it('400 for an update that hides deep nesting in an unknown field', async () => {
    const depth = 100_000;
    const body = `[${JSON.stringify(update('hostile_nested')).slice(0, -1)},"extra":${'['.repeat(depth)}${']'.repeat(depth)}}]`;
    const answer = await expectRefused(body, 400);
    expect(answer.json.errors[0]).toMatchObject({ index: 0 });
  });
});

describe('huge strings', () => {
  it('413 for a 2 MiB mirror name, 400 on field mirror for a 300-character one', async () => {
    await expectRefused(update('m'.repeat(2 * 1024 * 1024)), 413);
    const answer = await expectRefused(update('m'.repeat(300)), 400);
    expect(fields(answer)).toEqual(['0:mirror']);
  });

  it('400 for an error message over 8192 characters, a 256-character workflowId, a long flowType', async () => {
    const answer = await expectRefused(
      update('hostile_long_fields', { error: { message: 'e'.repeat(8193) }, workflowId: 'w'.repeat(256), flowType: 'f'.repeat(33) }),
      400,
    );
    expect(fields(answer)).toEqual(['0:error.message', '0:flowType', '0:workflowId']);
  });

  it('accepts a 255-character mirror name with quotes, backslashes and non-ASCII', async () => {
    const mirror = `"\\ é😀 ${'n'.repeat(255 - 6)}`;
    expect([...mirror].length).toBe(255);
    const answer = await post(daemon.url, update(mirror));
    expect(answer.status).toBe(202);
    await waitFor('the long-named mirror', async () => {
      const { rows } = await db.pool.query('select 1 from mirrorstate.mirrors where mirror = $1', [mirror]);
      return rows.length === 1;
    });
  });
});

describe('wrong types', () => {
  it('400 names every field of the wrong type', async () => {
    const answer = await expectRefused(
      [
        {
          mirror: 123,
          status: true,
          observedAt: 1_700_000_000,
          seq: '1',
          rowsSynced: 1.5,
          lagSeconds: 'NaN',
          dropped: 'yes',
          error: 'boom',
          source: ['a'],
          runId: {},
        },
        'an update as a string',
        42,
        null,
      ],
      400,
    );
    expect(fields(answer)).toEqual([
      '0:dropped',
      '0:error',
      '0:lagSeconds',
      '0:mirror',
      '0:observedAt',
      '0:rowsSynced',
      '0:runId',
      '0:seq',
      '0:source',
      '0:status',
      '1:',
      '2:',
      '3:',
    ]);
  });

  it('400 for numbers past what a double or seq can hold', async () => {
    const body = `{"mirror":"hostile_numbers","status":1,"observedAt":"${new Date().toISOString()}","seq":9007199254740993,"lagSeconds":1e400}`;
    const answer = await expectRefused(body, 400);
    expect(fields(answer)).toEqual(['0:lagSeconds', '0:seq']);
  });
});

describe('bytes and characters', () => {
  it('400 for bytes that are not UTF-8, inside a JSON string', async () => {
    const head = Buffer.from(`{"mirror":"bad`);
    const tail = Buffer.from(`","status":"running","observedAt":"${new Date().toISOString()}"}`);
    for (const bad of [[0xff, 0xfe], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      const answer = await expectRefused(Buffer.concat([head, Buffer.from(bad), tail]), 400);
      expect(answer.json.error).toMatch(/UTF-8/);
    }
  });

  it('400 on the field for an escaped NUL, an unpaired surrogate, or a control character', async () => {
    const observedAt = new Date().toISOString();
    const body = `[{"mirror":"a\\u0000b","status":1,"observedAt":"${observedAt}"},{"mirror":"a\\ud800b","status":1,"observedAt":"${observedAt}"},{"mirror":"a\\nb","status":1,"observedAt":"${observedAt}"}]`;
    const answer = await expectRefused(body, 400);
    expect(fields(answer)).toEqual(['0:mirror', '1:mirror', '2:mirror']);
  });
});

describe('a body that never ends', () => {
  it('408 and a closed connection after the idle timeout, while other clients are served', async () => {
    const before = await loggedJobs(db.pool);
    const started = Date.now();
    const slow = stream(daemon.url, [Buffer.from('[{"mirror":"hostile_slow","status":')], { hangAfter: true });

    // Meanwhile, the daemon serves health checks and other producers at once.
    await new Promise((r) => setTimeout(r, 500));
    const health = await get(daemon.url, '/healthz');
    expect(health.status).toBe(200);
    const other = await post(daemon.url, update('hostile_while_slow'));
    expect(other.status).toBe(202);
    expect(Date.now() - started).toBeLessThan(BODY_IDLE_TIMEOUT_MS);

    const result = await slow;
    await result.closed;
    const elapsed = Date.now() - started;
    expect(result.answer.status).toBe(408);
    expect(result.answer.json).toEqual({ error: expect.any(String) });
    expect(elapsed).toBeGreaterThanOrEqual(BODY_IDLE_TIMEOUT_MS / 2);
    expect(elapsed).toBeLessThan(2 * BODY_IDLE_TIMEOUT_MS);
    // Only the other producer's update was enqueued.
    expect(await loggedJobs(db.pool)).toBe(before + 1);
    expect((await get(daemon.url, '/healthz')).status).toBe(200);
  });
});
