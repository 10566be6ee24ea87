/**
 * Trimming is scheduled across replicas: two daemons on one catalog, each sending a throttled trim
 * job every interval, run about one trim per interval between them, not one each; the journal ends
 * within its limits, the invariant holds, and both daemons stop cleanly (trimmer before pg-boss).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { ago, invariantViolations, SCHEMA, write } from './support.js';

const INTERVAL_S = 2;
const WINDOW_MS = 9000;

let db: TestDatabase;
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase('reads_schedule');
});

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  await db?.drop();
});

const trimRuns = (d: DaemonProcess) => d.output().split('\n').filter((line) => /"component":"trimmer".*"msg":"trim done"/.test(line));

describe('scheduled trim', () => {
  it('runs on one replica per interval and keeps the journal within its limits', async () => {
    const env = { MIRRORSTATE_TRIM_INTERVAL: `${INTERVAL_S}s`, MIRRORSTATE_JOURNAL_MAX_PER_MIRROR: '3' };
    const started = Date.now();
    daemons.push(await startDaemon({ databaseUrl: db.url, env }));
    daemons.push(await startDaemon({ databaseUrl: db.url, env }));
    await write(db.pool, Array.from({ length: 40 }, (_, i) => ({ mirror: `sched_${i % 4}`, status: 'running', observedAt: ago(60_000 - i) })));

    await waitFor('the journal to be trimmed to 3 per mirror', async () => {
      const { rows } = await db.pool.query(`select max(journal_length)::int as n from ${SCHEMA}.mirrors`);
      return rows[0].n === 3;
    }, 15_000);
    await new Promise((r) => setTimeout(r, Math.max(0, WINDOW_MS - (Date.now() - started))));
    const codes = await Promise.all(daemons.map((d) => d.stop()));
    const elapsedS = (Date.now() - started) / 1000;

    const runs = daemons.map((d) => trimRuns(d).length);
    const total = runs[0]! + runs[1]!;
    // One job per interval slot between both replicas (+1 for the slot the window starts in).
    const bound = Math.ceil(elapsedS / INTERVAL_S) + 1;
    console.log(`trim runs per replica: ${runs.join(' + ')} = ${total} in ${elapsedS.toFixed(1)} s; one per slot allows ${bound}, uncoordinated would be ~${Math.floor((2 * elapsedS) / INTERVAL_S)}`);
    expect(codes).toEqual([0, 0]);
    expect(total).toBeGreaterThanOrEqual(2);
    expect(total).toBeLessThanOrEqual(bound);
    const trimmed = daemons.flatMap(trimRuns).map((line) => JSON.parse(line) as { journalByCount: number });
    expect(trimmed.reduce((n, r) => n + r.journalByCount, 0)).toBe(40 - 4 * 3);
    expect(await invariantViolations(db.pool)).toEqual([]);
  });
});
