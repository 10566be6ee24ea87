/**
 * `mirrorstate dlq` as an operator uses it, against a running daemon and real pg-boss: invalid
 * updates dead-lettered, listed and shown; redriven after MIRRORSTATE_MAX_FUTURE is widened and
 * applied exactly once, while a still invalid one comes back with its reason; purged by id and age;
 * a large set redriven by two operators at once, each letter moved once; a redrive that fails
 * half-way loses nothing.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEAD_LETTER_QUEUE, UPDATES_QUEUE } from '../../src/queue/boss.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { insertJobs, startProducer } from '../helpers/queue.js';

const exec = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('mirrorstate dlq', () => {
  let db: TestDatabase;
  let producer: PgBoss;
  let daemon: DaemonProcess | undefined;

  async function run(args: string[]): Promise<Run> {
    const env = { ...process.env, DATABASE_URL: db.url, MIRRORSTATE_LOG_LEVEL: 'warn' };
    try {
      const { stdout, stderr } = await exec(process.execPath, [CLI, 'dlq', ...args], { env, timeout: 120_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  async function restartDaemon(env: Record<string, string> = {}): Promise<void> {
    if (daemon) expect(await daemon.stop()).toBe(0);
    daemon = await startDaemon({ databaseUrl: db.url, env });
  }

  async function letters(): Promise<{ id: string; data: { reason: string; update: Record<string, unknown>; job: { id: string; index: number | null } } }[]> {
    const { rows } = await db.pool.query(`select id::text, data from pgboss.job where name = $1 order by created_on, id`, [DEAD_LETTER_QUEUE]);
    return rows;
  }

  async function count(sql: string, values: unknown[] = []): Promise<number> {
    const { rows } = await db.pool.query(`select count(*)::int as n from (${sql}) x`, values);
    return rows[0].n;
  }

  const inMinutes = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString();

  beforeAll(async () => {
    db = await createTestDatabase('dlq');
    await restartDaemon();
    producer = await startProducer(db.url);
  });
  beforeEach(async () => {
    // Each test starts from an empty dead-letter queue, whatever an earlier one left behind.
    await db.pool.query(`delete from pgboss.job where name = $1`, [DEAD_LETTER_QUEUE]);
  });
  afterAll(async () => {
    await producer?.stop({ graceful: false });
    await daemon?.stop();
    await db?.drop();
  });

  it('dead-letters, lists, shows, redrives after a configuration change exactly once, and purges', async () => {
    const ahead = { mirror: 'ahead', status: 'running', observedAt: inMinutes(30), rowsSynced: 5 };
    const ahead2 = { mirror: 'ahead <two>', status: 'STATUS_PAUSED', observedAt: inMinutes(20), seq: 1, extra: { kept: true } };
    const sleeping = { mirror: 'sleepy', status: 'sleeping', observedAt: inMinutes(0) };
    await insertJobs(producer, [ahead, { updates: [ahead2, { mirror: 'ok', status: 'running', observedAt: inMinutes(-1) }, sleeping] }, [1, 2]]);
    await waitFor('four dead letters', async () => (await letters()).length === 4);
    await waitFor('the valid update of the batch applied', async () => (await count(`select 1 from mirrorstate.mirrors where mirror = 'ok'`)) === 1);
    const before = await letters();
    const byMirror = (m: unknown) => before.find((l) => l.data.update?.mirror === m);
    const raw = before.find((l) => Array.isArray(l.data.update));
    expect(raw?.data.reason).toMatch(/^invalid message: job data must be an update object/);

    // list: text and JSON, every letter with its mirror and reason
    const text = await run(['list']);
    expect(text.code).toBe(0);
    expect(text.stdout.split('\n')[0]).toMatch(/^id\s+created_at\s+mirror\s+reason$/);
    for (const l of before) expect(text.stdout).toContain(l.id);
    expect(text.stdout).toMatch(/ahead\s+invalid update: observedAt is more than 5 minutes in the future of the daemon clock/);
    expect(text.stdout).toMatch(/sleepy\s+invalid update: status must be one of/);
    const json = await run(['list', '--json']);
    const listed = JSON.parse(json.stdout) as { total: number; shown: number; deadLetters: { id: string; mirror: string | null; reason: string; createdAt: string }[] };
    expect([listed.total, listed.shown]).toEqual([4, 4]);
    expect(listed.deadLetters.map((l) => l.mirror).sort()).toEqual([null, 'ahead', 'ahead <two>', 'sleepy'].sort());
    expect(listed.deadLetters[0]?.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

    // filters: reason text (any case), mirror, age, limit
    const future = JSON.parse((await run(['list', '--json', '--reason', 'IN THE FUTURE'])).stdout);
    expect(future.deadLetters.map((l: { mirror: string }) => l.mirror).sort()).toEqual(['ahead', 'ahead <two>']);
    expect(JSON.parse((await run(['list', '--json', '--mirror', 'sleepy'])).stdout).total).toBe(1);
    await db.pool.query(`update pgboss.job set created_on = created_on - interval '2 hours' where id = $1`, [raw?.id]);
    const old = JSON.parse((await run(['list', '--json', '--older-than', '1h'])).stdout);
    expect(old.deadLetters.map((l: { id: string }) => l.id)).toEqual([raw?.id]);
    expect(JSON.parse((await run(['list', '--json', '--newer-than', '1h'])).stdout).total).toBe(3);
    const limited = await run(['list', '--limit', '1']);
    expect(limited.stdout.trim().split('\n')).toHaveLength(2);
    expect(limited.stderr).toContain('1 of 4 dead letters shown');

    // show: the whole letter, the update as received
    const letter = byMirror('ahead <two>');
    const shown = await run(['show', letter?.id ?? '']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      id: letter?.id,
      queue: DEAD_LETTER_QUEUE,
      state: 'created',
      reason: 'invalid update: observedAt is more than 5 minutes in the future of the daemon clock',
      errors: [{ field: 'observedAt', message: 'is more than 5 minutes in the future of the daemon clock' }],
      update: ahead2,
      job: { id: letter?.data.job.id, index: 0 },
    });
    const unknown = await run(['show', '00000000-0000-4000-8000-000000000000']);
    expect([unknown.code, unknown.stderr]).toEqual([1, 'mirrorstate dlq show: no dead letter with id 00000000-0000-4000-8000-000000000000\n']);
    expect((await run(['show', 'not-an-id'])).code).toBe(2);
    const help = await run(['--help']);
    expect([help.code, help.stdout.includes('dlq redrive ID…'), help.stdout.includes('MIRRORSTATE_MAX_FUTURE')]).toEqual([0, true, true]);
    expect((await run(['redrive'])).code).toBe(2);
    expect((await run(['purge', '--reason', 'x'])).code).toBe(2);

    // ids are all or nothing: one unknown id and no letter moves
    const partial = await run(['redrive', byMirror('ahead')?.id ?? '', '00000000-0000-4000-8000-000000000000']);
    expect(partial.code).toBe(1);
    expect(partial.stderr).toContain('no dead letter with id 00000000-0000-4000-8000-000000000000');
    expect((await letters()).map((l) => l.id).sort()).toEqual(before.map((l) => l.id).sort());

    // widen the future limit, redrive everything: the two now valid apply once, the two invalid come back
    await restartDaemon({ MIRRORSTATE_MAX_FUTURE: '1h' });
    const redrive = await run(['redrive', '--all']);
    expect(redrive.code).toBe(0);
    expect(JSON.parse(redrive.stdout)).toMatchObject({ redriven: 4 });
    await waitFor('the redriven updates applied', async () => (await count(`select 1 from mirrorstate.mirrors where mirror like 'ahead%'`)) === 2);
    await waitFor('the still invalid ones back', async () => (await letters()).length === 2);
    const after = await letters();
    expect(after.map((l) => l.id).filter((id) => before.some((b) => b.id === id))).toEqual([]);
    const back = after.find((l) => l.data.update?.mirror === 'sleepy');
    expect(back?.data).toMatchObject({ reason: byMirror('sleepy')?.data.reason, update: sleeping, job: { index: null } });
    expect(back?.data.job.id).not.toBe(byMirror('sleepy')?.data.job.id);
    expect(after.find((l) => Array.isArray(l.data.update))?.data.update).toEqual([1, 2]);
    const { rows: journal } = await db.pool.query(
      `select mirror, applied, payload from mirrorstate.journal where mirror like 'ahead%' order by mirror`,
    );
    expect(journal).toEqual([
      { mirror: 'ahead', applied: true, payload: ahead },
      { mirror: 'ahead <two>', applied: true, payload: ahead2 },
    ]);
    const { rows: mirrors } = await db.pool.query(
      `select mirror, status, rows_synced, transitions_total from mirrorstate.mirrors where mirror like 'ahead%' order by mirror`,
    );
    expect(mirrors).toEqual([
      { mirror: 'ahead', status: 'running', rows_synced: '5', transitions_total: '1' },
      { mirror: 'ahead <two>', status: 'paused', rows_synced: null, transitions_total: '1' },
    ]);

    // purge by age, then by id; unknown ids change nothing
    const rawAgain = after.find((l) => Array.isArray(l.data.update));
    await db.pool.query(`update pgboss.job set created_on = created_on - interval '2 days' where id = $1`, [rawAgain?.id]);
    const byAge = await run(['purge', '--older-than', '1d']);
    expect([byAge.code, JSON.parse(byAge.stdout).purged]).toEqual([0, 1]);
    const missing = await run(['purge', back?.id ?? '', '00000000-0000-4000-8000-000000000000']);
    expect(missing.code).toBe(1);
    expect(await letters()).toHaveLength(1);
    const byId = await run(['purge', back?.id ?? '']);
    expect([byId.code, JSON.parse(byId.stdout).purged]).toEqual([0, 1]);
    expect((await run(['list'])).stdout).toBe('no dead letters\n');
  });

  it('redrives a large set with progress, each letter exactly once, though two operators run it at once', async () => {
    await restartDaemon(); // the 5-minute default: all of these are refused
    const N = 2000;
    const bulk = Array.from({ length: N }, (_, i) => ({ mirror: `bulk-${i}`, status: 'running', observedAt: inMinutes(30) }));
    await insertJobs(producer, [{ updates: bulk.slice(0, 1000) }, { updates: bulk.slice(1000) }]);
    await waitFor(`${N} dead letters`, async () => (await count(`select 1 from pgboss.job where name = $1`, [DEAD_LETTER_QUEUE])) === N, 60_000);

    // The daemon stays down while the operators redrive, so the jobs they make can be counted
    // before it applies them (a written job is deleted from the queue).
    expect(await daemon?.stop()).toBe(0);
    daemon = undefined;
    // Each re-created job takes a millisecond, so a batch holds its letters for half a second and
    // the two runs below overlap: both see the same letters waiting.
    await db.pool.query(`
      create function pgboss.slow_insert() returns trigger language plpgsql as $$
      begin perform pg_sleep(0.001); return new; end $$;
      create trigger slow_insert before insert on pgboss.job_common for each row
        when (new.name = '${UPDATES_QUEUE}' and new.data->>'mirror' like 'bulk-%') execute function pgboss.slow_insert();`);
    const [a, b] = await Promise.all([run(['redrive', '--reason', 'future']), run(['redrive', '--all'])]).finally(() =>
      db.pool.query('drop trigger slow_insert on pgboss.job_common; drop function pgboss.slow_insert()'),
    );
    expect([a.code, b.code]).toEqual([0, 0]);
    const moved = [a, b].map((r) => (JSON.parse(r.stdout) as { redriven: number }).redriven);
    expect(moved.reduce((x, y) => x + y, 0)).toBe(N);
    // Progress: a run that found more than 1000 letters reports after each batch on stderr, up to
    // what it moved (the other run may have found fewer by the time it counted).
    const progress = [a, b].map((r) => r.stderr.split('\n').filter((line) => /^mirrorstate dlq redrive: \d+ of \d+ redriven$/.test(line)));
    expect(Math.max(...progress.map((lines) => lines.length))).toBeGreaterThanOrEqual(2);
    progress.forEach((lines, i) => {
      if (lines.length > 0) expect(lines.at(-1)).toMatch(new RegExp(`: ${moved[i]} of \\d+ redriven$`));
    });

    // exactly once: one job per letter in the updates queue, every mirror applied, nothing left
    expect(await count(`select 1 from pgboss.job where name = $1 and data->>'mirror' like 'bulk-%'`, [UPDATES_QUEUE])).toBe(N);
    await restartDaemon({ MIRRORSTATE_MAX_FUTURE: '1h' });
    await waitFor('every redriven update applied', async () => (await count(`select 1 from mirrorstate.journal where mirror like 'bulk-%'`)) === N, 60_000);
    expect(await count(`select 1 from pgboss.job where name = $1`, [DEAD_LETTER_QUEUE])).toBe(0);
    const metrics = await (await fetch(`${(daemon as DaemonProcess | undefined)?.url}/metrics`)).text();
    expect(metrics).toMatch(/^mirrorstate_updates_total\{result="duplicate"\} 0$/m);
  });

  it('a redrive that fails half-way loses and duplicates nothing', async () => {
    await daemon?.stop(); // nothing consumes: the test looks at the queue itself
    daemon = undefined;
    const data = (mirror: string, i: number) => ({
      reason: 'invalid update: observedAt is more than 5 minutes in the future of the daemon clock',
      errors: [{ field: 'observedAt', message: 'is more than 5 minutes in the future of the daemon clock' }],
      update: { mirror, status: 'running', observedAt: inMinutes(30) },
      job: { id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, index: null },
    });
    // 600 letters in two batches, one of which holds a letter the queue refuses.
    const jobs = Array.from({ length: 600 }, (_, i) => data(i === 550 ? 'poison' : `crash-${i}`, i));
    for (let i = 0; i < jobs.length; i++) {
      await producer.insert(DEAD_LETTER_QUEUE, [{ data: jobs[i] as object }]);
    }
    await db.pool.query(`
      create function pgboss.refuse_poison() returns trigger language plpgsql as $$
      begin raise exception 'the queue refuses this job (test)'; end $$;
      create trigger refuse_poison before insert on pgboss.job_common for each row
        when (new.name = '${UPDATES_QUEUE}' and new.data->>'mirror' = 'poison') execute function pgboss.refuse_poison();`);
    let left: string[] = [];
    try {
      const failed = await run(['redrive', '--all']);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('the queue refuses this job (test)');
      // Every letter is in exactly one place: re-created (a whole batch, committed) or still a letter.
      const { rows } = await db.pool.query(
        `select name, mirror from (select name, coalesce(data->'update'->>'mirror', data->>'mirror') as mirror
           from pgboss.job where name = any($1::text[])) x where mirror = 'poison' or mirror like 'crash-%'`,
        [[UPDATES_QUEUE, DEAD_LETTER_QUEUE]],
      );
      const queued = rows.filter((r) => r.name === UPDATES_QUEUE).map((r) => r.mirror as string);
      left = rows.filter((r) => r.name === DEAD_LETTER_QUEUE).map((r) => r.mirror as string);
      expect([...queued, ...left].sort()).toEqual(jobs.map((j) => j.update.mirror).sort());
      expect(left).toContain('poison');
      expect([0, 500]).toContain(queued.length);
    } finally {
      await db.pool.query('drop trigger refuse_poison on pgboss.job_common; drop function pgboss.refuse_poison()');
    }
    const retried = await run(['redrive', '--all']);
    expect([retried.code, JSON.parse(retried.stdout).redriven]).toEqual([0, left.length]);
    expect(await count(`select 1 from pgboss.job where name = $1 and (data->>'mirror' = 'poison' or data->>'mirror' like 'crash-%')`, [UPDATES_QUEUE])).toBe(600);
  });

  it('a redrive moves only letters made before it started, so one that comes back is not redriven again', async () => {
    await daemon?.stop();
    daemon = undefined;
    // Stands in for a daemon that dead-letters a redriven update again at once, inside the redrive.
    await db.pool.query(`
      create function pgboss.echo_letter() returns trigger language plpgsql as $$
      begin
        insert into pgboss.job (name, data) values ('${DEAD_LETTER_QUEUE}',
          jsonb_build_object('reason', 'invalid update: again', 'errors', '[]'::jsonb, 'update', new.data || '{"again": true}', 'job', jsonb_build_object('id', new.id, 'index', null)));
        return new;
      end $$;
      create trigger echo_letter before insert on pgboss.job_common for each row
        when (new.name = '${UPDATES_QUEUE}' and new.data->>'mirror' = 'echo' and not new.data ? 'again') execute function pgboss.echo_letter();`);
    try {
      // An id below any random one: a redrive walks ids upwards, so the letter that comes back (a random
      // id) lies ahead of it, and only the cutoff in time keeps it out.
      await producer.insert(DEAD_LETTER_QUEUE, [{ id: '00000000-0000-4000-8000-000000000000', data: { reason: 'invalid update: x', errors: [], update: { mirror: 'echo' }, job: { id: 'j', index: null } } }]);
      const once = await run(['redrive', '--all']);
      expect([once.code, JSON.parse(once.stdout).redriven]).toEqual([0, 1]);
      expect((await letters()).map((l) => l.data.update)).toEqual([{ mirror: 'echo', again: true }]);
    } finally {
      await db.pool.query('drop trigger echo_letter on pgboss.job_common; drop function pgboss.echo_letter()');
    }
  });
});
