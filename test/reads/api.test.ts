/**
 * The read API over HTTP, against the daemon as a process: answer shapes and timestamps, 404s and
 * 400s naming the parameter, URL-encoded awkward names, ?dropped=true, transition paging while
 * transitions are written, and the `status` and `trim` commands.
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorDetail, MirrorState, TransitionView } from '../../src/catalog/views.js';
import type { TransitionsPage } from '../../src/catalog/readTransitions.js';
import { CLI, type DaemonProcess, startDaemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { ago, invariantViolations, SCHEMA, write } from './support.js';

const run = promisify(execFile);
const MICROS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const AWKWARD = ['with space', 'quote"s and \'apostrophes\'', 'slash/name', 'emoji 🚀 ünïcode', 'back\\slash', 'percent%20sign', '?query#hash&amp'];

let db: TestDatabase;
let daemon: DaemonProcess | undefined;

async function get(path: string): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${daemon?.url}${path}`);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return { status: res.status, body: await res.json() };
}

const mirrorPath = (name: string) => `/api/v1/mirrors/${encodeURIComponent(name)}`;

beforeAll(async () => {
  db = await createTestDatabase('reads_api');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  await write(db.pool, [
    { mirror: 'api_a', status: 'setup', observedAt: ago(60_000, 123), workflowId: 'wf-1', flowType: 'cdc', source: 'pg1', destination: 'sf1' },
    { mirror: 'api_a', status: 'running', observedAt: ago(50_000, 456), rowsSynced: 1200, lagSeconds: 1.5, runId: 'r1' },
    { mirror: 'api_a', status: 'failed', observedAt: ago(40_000, 789), error: { class: 'ssl_error', message: 'handshake "failed"' } },
    { mirror: 'api_dropped', status: 'terminated', observedAt: ago(30_000), dropped: true },
    ...AWKWARD.map((mirror, i) => ({ mirror, status: 'running', observedAt: ago(20_000 - i) })),
  ]);
  // Older than the current version, in a later batch: journaled as stale, applied nowhere.
  await write(db.pool, [{ mirror: 'api_a', status: 'paused', observedAt: ago(45_000, 1), extra: 'kept' }]);
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

describe('GET /api/v1/mirrors', () => {
  it('lists current states, without dropped mirrors unless ?dropped=true', async () => {
    const { status, body } = await get('/api/v1/mirrors');
    expect(status).toBe(200);
    const names = (body.mirrors as MirrorState[]).map((m) => m.mirror);
    expect(names).toContain('api_a');
    expect(names).not.toContain('api_dropped');
    const all = await get('/api/v1/mirrors?dropped=true');
    const dropped = (all.body.mirrors as MirrorState[]).find((m) => m.mirror === 'api_dropped');
    expect(dropped).toMatchObject({ dropped: true, status: 'terminated' });
    expect(dropped?.droppedAt).toMatch(MICROS);
    expect((await get('/api/v1/mirrors?dropped=false')).body.mirrors).toHaveLength(names.length);
  });

  it('answers 400 naming a bad dropped parameter', async () => {
    const { status, body } = await get('/api/v1/mirrors?dropped=maybe');
    expect(status).toBe(400);
    expect(body).toMatchObject({ parameter: 'dropped' });
    expect(body.error).toMatch(/dropped/);
  });
});

describe('GET /api/v1/mirrors/{mirror}', () => {
  it('answers the state, the journal and the transitions, camelCase with microsecond timestamps', async () => {
    const { status, body } = await get(`${mirrorPath('api_a')}?events=1000`);
    expect(status).toBe(200);
    const detail = body as MirrorDetail;
    expect(detail.mirror).toMatchObject({
      mirror: 'api_a', status: 'failed', workflowId: 'wf-1', runId: 'r1', flowType: 'cdc', source: 'pg1', destination: 'sf1',
      rowsSynced: 1200, lagSeconds: 1.5, error: { class: 'ssl_error', message: 'handshake "failed"' }, dropped: false,
      droppedAt: null, transitionsTotal: 3, journalLength: 4, seq: 0,
    });
    for (const field of ['statusSince', 'observedAt', 'journalOldestAt', 'createdAt', 'updatedAt'] as const) {
      expect(detail.mirror[field]).toMatch(MICROS);
    }
    expect(detail.mirror.observedAt.endsWith('789Z')).toBe(true);
    expect(detail.journal.length).toBe(4);
    expect(detail.journal.oldestAt).toBe(detail.mirror.journalOldestAt);
    expect(detail.journal.oldestAt?.endsWith('123Z')).toBe(true);
    // Newest first by version; the stale update is journaled, not applied, payload as received.
    expect(detail.journal.events.map((e) => e.status)).toEqual(['failed', 'paused', 'running', 'setup']);
    const stale = detail.journal.events[1];
    expect(stale).toMatchObject({ applied: false, seq: 0, payload: { mirror: 'api_a', status: 'paused', extra: 'kept' } });
    expect(stale?.recordedAt).toMatch(MICROS);
    expect(typeof stale?.id).toBe('number');
    expect(detail.transitions.map((x: TransitionView) => [x.from, x.to])).toEqual([['running', 'failed'], ['setup', 'running'], [null, 'setup']]);
    expect(detail.transitions[0]).toMatchObject({ workflowId: 'wf-1', error: { class: 'ssl_error' } });
    expect(detail.transitions[2]?.error).toBeNull();
  });

  it('limits events to ?events=N (default 20), newest first', async () => {
    expect((await get(`${mirrorPath('api_a')}?events=2`)).body.journal.events.map((e: { status: string }) => e.status)).toEqual(['failed', 'paused']);
    const none = (await get(`${mirrorPath('api_a')}?events=0`)).body as MirrorDetail;
    expect(none.journal).toMatchObject({ length: 4, events: [] });
    await write(db.pool, Array.from({ length: 30 }, (_, i) => ({ mirror: 'api_many', status: 'running', observedAt: ago(100_000 - i * 100) })));
    const many = (await get(mirrorPath('api_many'))).body as MirrorDetail;
    expect(many.journal.length).toBe(30);
    expect(many.journal.events).toHaveLength(20);
  });

  it('answers 404 for an unknown mirror, as JSON', async () => {
    for (const path of [mirrorPath('no such mirror'), `${mirrorPath('no such mirror')}/transitions`]) {
      const { status, body } = await get(path);
      expect(status).toBe(404);
      expect(body.error).toContain('no such mirror');
    }
  });

  it('answers 400 naming the parameter at fault', async () => {
    const cases: [string, string][] = [
      [`${mirrorPath('api_a')}?events=abc`, 'events'],
      [`${mirrorPath('api_a')}?events=1001`, 'events'],
      [`${mirrorPath('api_a')}?events=-1`, 'events'],
      [`${mirrorPath('api_a')}?events=1.5`, 'events'],
      [`${mirrorPath('api_a')}/transitions?limit=0`, 'limit'],
      [`${mirrorPath('api_a')}/transitions?limit=1001`, 'limit'],
      [`${mirrorPath('api_a')}/transitions?before=x`, 'before'],
      [`${mirrorPath('api_a')}/transitions?before=0`, 'before'],
      [`${mirrorPath('api_a')}/transitions?before=99999999999999999999`, 'before'],
      ['/api/v1/mirrors/%E0%A4%A', 'mirror'],
    ];
    for (const [path, parameter] of cases) {
      const { status, body } = await get(path);
      expect({ path, status, parameter: body.parameter }).toEqual({ path, status: 400, parameter });
      expect(body.error).toContain(parameter);
    }
  });

  it('reaches mirrors named . and .. when the dots are percent-encoded', async () => {
    await write(db.pool, [
      { mirror: '.', status: 'running', observedAt: ago(5_000) },
      { mirror: '..', status: 'paused', observedAt: ago(5_000) },
    ]);
    // fetch() would resolve %2E%2E as a dot segment before sending; a raw request sends it as is.
    const raw = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        request({ host: '127.0.0.1', port: daemon?.port, path }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        }).on('error', reject).end();
      });
    const one = await raw('/api/v1/mirrors/%2E');
    expect({ status: one.status, mirror: JSON.parse(one.body).mirror?.mirror }).toEqual({ status: 200, mirror: '.' });
    const two = await raw('/api/v1/mirrors/%2E%2E/transitions');
    expect({ status: two.status, to: JSON.parse(two.body).transitions?.[0]?.to }).toEqual({ status: 200, to: 'paused' });
  });

  it('decodes URL-encoded awkward names', async () => {
    for (const name of AWKWARD) {
      const { status, body } = await get(mirrorPath(name));
      expect({ name, status }).toEqual({ name, status: 200 });
      expect(body.mirror.mirror).toBe(name);
      const page = await get(`${mirrorPath(name)}/transitions`);
      expect(page.status).toBe(200);
      expect(page.body.transitions).toHaveLength(1);
    }
  });
});

describe('GET /api/v1/mirrors/{mirror}/transitions', () => {
  it('pages with ?before, visiting every transition exactly once while new ones are written', async () => {
    const statuses = ['running', 'paused'];
    const start = Date.now() - 200_000;
    const at = (i: number) => new Date(start + i * 10).toISOString();
    await write(db.pool, Array.from({ length: 250 }, (_, i) => ({ mirror: 'api_paged', status: statuses[i % 2], observedAt: at(i) })));
    const { rows } = await db.pool.query(`select id from ${SCHEMA}.transitions where mirror = 'api_paged' order by id desc`);
    const existing = rows.map((r: { id: number }) => r.id);
    expect(existing).toHaveLength(250);

    let writing = true;
    let written = 0;
    const writer = (async () => {
      for (let i = 250; writing; i += 2) {
        await write(db.pool, [{ mirror: 'api_paged', status: 'running', observedAt: at(i) }, { mirror: 'api_paged', status: 'paused', observedAt: at(i + 1) }]);
        written += 2;
      }
    })();
    const visited: number[] = [];
    let before: number | null = null;
    let pages = 0;
    try {
      do {
        const { status, body }: { status: number; body: TransitionsPage } = await get(
          `${mirrorPath('api_paged')}/transitions?limit=7${before === null ? '' : `&before=${before}`}`,
        );
        expect(status).toBe(200);
        expect(body.transitions.length).toBeLessThanOrEqual(7);
        visited.push(...body.transitions.map((x) => x.id));
        before = body.next;
        pages++;
        if (before !== null) expect(before).toBe(body.transitions[body.transitions.length - 1]?.id);
      } while (before !== null);
    } finally {
      writing = false;
      await writer;
    }
    console.log(`paging: ${pages} pages, ${visited.length} transitions visited, ${written} written meanwhile`);
    expect(written).toBeGreaterThan(0);
    expect(new Set(visited).size).toBe(visited.length); // none twice
    expect([...visited].sort((a, b) => b - a)).toEqual(visited); // newest first throughout
    const seen = new Set(visited);
    expect(existing.filter((id) => !seen.has(id))).toEqual([]); // every one that existed
  });

  it('answers next: null on the last page and defaults to 100 a page', async () => {
    const first = (await get(`${mirrorPath('api_paged')}/transitions`)).body as TransitionsPage;
    expect(first.transitions).toHaveLength(100);
    expect(first.next).toBe(first.transitions[99]?.id);
    const small = (await get(`${mirrorPath('api_a')}/transitions?limit=3`)).body as TransitionsPage;
    expect(small).toMatchObject({ next: null });
    expect(small.transitions.map((x) => x.to)).toEqual(['failed', 'running', 'setup']);
    const rest = (await get(`${mirrorPath('api_a')}/transitions?limit=1&before=${small.transitions[0]?.id}`)).body as TransitionsPage;
    expect(rest.transitions.map((x) => x.to)).toEqual(['running']);
    expect(rest.next).toBe(rest.transitions[0]?.id);
  });
});

describe('command line', () => {
  const env = () => ({ ...process.env, DATABASE_URL: db.url, MIRRORSTATE_LOG_LEVEL: 'silent' });

  it('status shows one mirror from the same snapshot reader, and the table', async () => {
    const one = await run(process.execPath, [CLI, 'status', 'api_a'], { env: env() });
    expect(one.stdout).toMatch(/journal_length\s+4/);
    expect(one.stdout).toMatch(/transitions \(newest first\)/);
    expect(one.stdout).toMatch(/running\s+failed/);
    const table = await run(process.execPath, [CLI, 'status'], { env: env() });
    expect(table.stdout).toMatch(/^mirror\s+status/);
    expect(table.stdout).toContain('api_many');
    await expect(run(process.execPath, [CLI, 'status', 'nope'], { env: env() })).rejects.toMatchObject({ code: 1 });
  });

  it('trim runs retention once with the configured limits', async () => {
    const { rows: [excess] } = await db.pool.query(`select sum(greatest(journal_length - 5, 0))::int as n from ${SCHEMA}.mirrors`);
    expect(excess.n).toBeGreaterThan(25 + 245); // api_many 30 → 5, api_paged ≥ 250 → 5
    const { stdout } = await run(process.execPath, [CLI, 'trim', '--journal-max-per-mirror', '5', '--journal-max-age', '0'], { env: env() });
    const result = JSON.parse(stdout.trim().split('\n').pop() as string);
    expect(result.journalByCount).toBe(excess.n);
    expect(result.journalByAge).toBe(0);
    const detail = (await get(`${mirrorPath('api_many')}?events=1000`)).body as MirrorDetail;
    expect(detail.journal.length).toBe(5);
    expect(detail.journal.events).toHaveLength(5);
    expect(await invariantViolations(db.pool)).toEqual([]);
  });
});
