/** Without MIRRORSTATE_INGEST_TOKEN, ingest is off: 403 whatever the request, and nothing enqueued. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { logJobs, loggedJobs } from '../helpers/queue.js';
import { get, post, TOKEN, update } from './client.js';

let db: TestDatabase;
let daemon: DaemonProcess;

beforeAll(async () => {
  db = await createTestDatabase('ingest_notoken');
  // The daemon must not inherit a token from the environment the tests run in.
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_INGEST_TOKEN: '' } });
  await logJobs(db.pool);
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

it('answers 403 with or without a token and enqueues nothing', async () => {
  const withToken = await post(daemon.url, update('notoken_a'));
  const withoutToken = await post(daemon.url, update('notoken_b'), { token: null });
  const garbage = await post(daemon.url, 'not json', { contentType: 'text/plain', token: TOKEN });
  for (const answer of [withToken, withoutToken, garbage]) {
    expect(answer.status).toBe(403);
    expect(answer.json).toEqual({ error: expect.stringMatching(/MIRRORSTATE_INGEST_TOKEN/) });
  }
  expect(await loggedJobs(db.pool)).toBe(0);
  // The rest of the daemon is unaffected.
  expect((await get(daemon.url, '/healthz')).status).toBe(200);
});
