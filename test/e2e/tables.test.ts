/**
 * Tables through every door, the daemon as a process (docs/tables.md): published through the queue
 * by the producer library, through POST /api/v1/updates and by `mirrorstate publish --tables-file -`
 * from standard input; replaced, kept, stale and bad entries as a producer meets them, seen in the
 * read API and the catalog.
 */
import { spawn } from 'node:child_process';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishUpdates } from '../../src/publish.js';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { insertJobs, startProducer } from '../helpers/queue.js';

const TOKEN = 'tables-token';
let db: TestDatabase;
let daemon: DaemonProcess;
let producer: PgBoss;
const at = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000).toISOString();

interface Answer { mirror: { observedAt: string }; tables: { table: string; rowsSynced: number | null; snapshot: unknown; error: unknown }[] }
async function mirror(name: string): Promise<Answer | undefined> {
  const res = await fetch(`${daemon.url}/api/v1/mirrors/${encodeURIComponent(name)}`);
  return res.status === 200 ? ((await res.json()) as Answer) : undefined;
}
const tableNames = async (name: string) => (await mirror(name))?.tables.map((t) => t.table);

beforeAll(async () => {
  db = await createTestDatabase('e2e_tables');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_INGEST_TOKEN: TOKEN } });
  producer = await startProducer(db.url);
});
afterAll(async () => {
  await producer?.stop({ graceful: false });
  await daemon?.stop();
  await db?.drop();
});

describe('tables through the queue', () => {
  it('land whole from the producer library, are replaced by a newer set, kept without one, and a stale set changes nothing', async () => {
    await publishUpdates(producer, [{
      mirror: 'lib', status: 'snapshot', observedAt: at(60),
      tables: [
        { table: 'public.orders', rowsSynced: 10, snapshot: { partitions: 4, partitionsSynced: 1, startedAt: at(120) } },
        { table: 'public.items', error: { class: 'connection', message: 'reset' } },
      ],
    }]);
    await waitFor('the first set', async () => (await tableNames('lib'))?.length === 2);
    const first = await mirror('lib');
    expect(first?.tables.map((t) => [t.table, t.rowsSynced, t.error])).toEqual([
      ['public.items', null, { class: 'connection', message: 'reset' }],
      ['public.orders', 10, null],
    ]);

    const withoutTables = at(50);
    await publishUpdates(producer, [{ mirror: 'lib', status: 'running', observedAt: withoutTables, rowsSynced: 11 }]);
    await waitFor('the status without tables', async () => (await mirror('lib'))?.mirror.observedAt.startsWith(withoutTables.slice(0, 19)) ?? false);
    expect(await tableNames('lib')).toEqual(['public.items', 'public.orders']);

    await publishUpdates(producer, [
      { mirror: 'lib', status: 'running', observedAt: at(40), tables: [{ table: 'public.orders', rowsSynced: 40 }] },
      { mirror: 'lib', status: 'running', observedAt: at(55), tables: [{ table: 'stale' }] },
    ]);
    await waitFor('the newer set', async () => (await tableNames('lib'))?.join() === 'public.orders');
    expect((await mirror('lib'))?.tables[0]).toMatchObject({ table: 'public.orders', rowsSynced: 40, snapshot: null, error: null });
  });

  it('dead-letters an update with a bad entry, naming tables[i].field, and applies the valid ones of its job', async () => {
    await insertJobs(producer, [{ updates: [
      { mirror: 'bad', status: 'running', observedAt: at(30), tables: [{ table: 'ok' }, { table: 'x', snapshot: { partitions: 1, partitionsSynced: 2 } }] },
      { mirror: 'good', status: 'running', observedAt: at(30), tables: [{ table: 'ok' }] },
    ] }]);
    await waitFor('the valid update', async () => (await tableNames('good'))?.join() === 'ok');
    const letters = async () => (await db.pool.query(`select data from pgboss.job where name = 'mirrorstate-updates-dlq'`)).rows.map((r) => r.data);
    await waitFor('the dead letter', async () => (await letters()).length === 1);
    const [letter] = await letters();
    expect(letter.errors).toEqual([{ field: 'tables[1].snapshot.partitionsSynced', message: 'must be at most partitions (1), got 2' }]);
    expect(letter.job.index).toBe(0);
    expect(await mirror('bad')).toBeUndefined();
  });
});

describe('tables over HTTP', () => {
  const post = (body: unknown) =>
    fetch(`${daemon.url}/api/v1/updates`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body),
    });

  it('are accepted whole, and a bad entry is a 400 naming it with nothing enqueued', async () => {
    const refused = await post([
      { mirror: 'http', status: 'running', observedAt: at(20), tables: [{ table: 'a' }] },
      { mirror: 'http2', status: 'running', observedAt: at(20), tables: [{ table: 'a' }, { table: 'a' }] },
    ]);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ errors: [{ index: 1, field: 'tables[1].table', message: '"a" is listed twice' }] });

    const accepted = await post({ mirror: 'http', status: 'snapshot', observedAt: at(10), tables: [{ table: 'public.t', lastSyncedAt: at(11) }] });
    expect(accepted.status).toBe(202);
    await waitFor('the HTTP set', async () => (await tableNames('http'))?.join() === 'public.t');
    expect(await mirror('http2')).toBeUndefined();
  });
});

describe('tables from the command line', () => {
  function publish(stdin: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, 'publish', ...args], { env: { ...process.env, DATABASE_URL: db.url }, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(stdin);
    });
  }

  it('reads them from standard input with --tables-file -, and refuses a file that is not JSON in one line', async () => {
    const ok = await publish(JSON.stringify([{ table: 'cli.t', rowsSynced: 3 }]), '--mirror', 'cli', '--status', 'running', '--tables-file', '-');
    expect(ok.code).toBe(0);
    await waitFor('the CLI set', async () => (await mirror('cli'))?.tables.map((t) => `${t.table}:${t.rowsSynced}`).join() === 'cli.t:3');

    const bad = await publish('[{"table":', '--mirror', 'cli', '--status', 'running', '--tables-file', '-');
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('--tables-file standard input is not JSON');

    const invalid = await publish(JSON.stringify([{ table: '' }]), '--mirror', 'cli', '--status', 'running', '--tables-file', '-');
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('tables[0].table');
  });
});

describe('the mirror list by pages', () => {
  it('walks every mirror once in byte order with limit and after, and answers next', async () => {
    const all = ((await (await fetch(`${daemon.url}/api/v1/mirrors`)).json()) as { mirrors: { mirror: string }[] }).mirrors.map((m) => m.mirror);
    expect(all.length).toBeGreaterThan(3);
    const walked: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const query: string = `limit=2${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
      const page = (await (await fetch(`${daemon.url}/api/v1/mirrors?${query}`)).json()) as { mirrors: { mirror: string }[]; next: string | null };
      expect(page.mirrors.length).toBeLessThanOrEqual(2);
      walked.push(...page.mirrors.map((m) => m.mirror));
      after = page.next;
      if (after === null) break;
    }
    expect(walked).toEqual(all);
    const bad = await fetch(`${daemon.url}/api/v1/mirrors?limit=1001`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ parameter: 'limit' });
  });
});
