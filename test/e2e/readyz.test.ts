/** /readyz answers in time when the catalog hangs instead of refusing: a probe never waits on it. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type DaemonProcess, startDaemon } from '../helpers/daemon.js';

let db: TestDatabase;
let daemon: DaemonProcess;

beforeAll(async () => {
  db = await createTestDatabase('readyz');
  daemon = await startDaemon({ databaseUrl: db.url });
});
afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

it('answers 503 "no answer" while the catalog hangs, and 200 once it answers again', async () => {
  expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);
  const locker = await db.pool.connect();
  try {
    await locker.query('begin');
    await locker.query('lock table mirrorstate.schema_migrations in access exclusive mode');
    const answer = await fetch(`${daemon.url}/readyz`, { signal: AbortSignal.timeout(5_000) });
    expect(answer.status).toBe(503);
    expect(((await answer.json()) as { error: string }).error).toMatch(/^catalog unreachable: no answer within \d+ ms/);
  } finally {
    await locker.query('rollback');
    locker.release();
  }
  expect((await fetch(`${daemon.url}/readyz`)).status).toBe(200);
});
