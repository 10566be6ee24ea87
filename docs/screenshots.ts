/**
 * `npm run screenshots`: the status-page images in this folder, made the way a user would see the
 * pages. A fresh database on the test server (TEST_DATABASE_URL) gets the demo fleet of
 * test/helpers/demoFleet.ts and one flapping mirror of its own, the built daemon serves it, and
 * headless Chromium photographs `/` (with its sparklines), one mirror's page and the flapping
 * mirror's timeline at 1280×900. The database is dropped afterwards.
 */
import { fileURLToPath } from 'node:url';
import { screenshot } from '../test/helpers/chromium.js';
import { startDaemon } from '../test/helpers/daemon.js';
import { createTestDatabase } from '../test/helpers/db.js';
import { demoFleet } from '../test/helpers/demoFleet.js';
import { migrateCatalog, write } from '../test/reads/support.js';

const out = (name: string) => fileURLToPath(new URL(name, import.meta.url));
const HOUR = 3_600_000;
const FLAPPING = 'checkout_events_cdc';

/**
 * A week of a mirror that flaps: running, then 40 failures a few minutes apart (narrower than a
 * pixel of the 7-day timeline, so they draw as merged marks), a five-hour failure, an hour paused.
 */
function flappingHistory(nowMs: number): object[] {
  const at = (ms: number) => new Date(nowMs - ms).toISOString();
  const base = { mirror: FLAPPING, flowType: 'cdc', source: 'pg_orders', destination: 'clickhouse_events', workflowId: 'checkout-events-flow' };
  return [
    { ...base, status: 'setup', observedAt: at(150 * HOUR) },
    { ...base, status: 'snapshot', observedAt: at(149 * HOUR) },
    { ...base, status: 'running', observedAt: at(140 * HOUR) },
    ...Array.from({ length: 80 }, (_, i) => ({ ...base, status: i % 2 ? 'running' : 'failed', observedAt: at(100 * HOUR - i * 90_000) })),
    { ...base, status: 'failed', observedAt: at(50 * HOUR), error: { class: 'connection', message: 'could not connect to server: Connection refused' } },
    { ...base, status: 'running', observedAt: at(45 * HOUR) },
    { ...base, status: 'pausing', observedAt: at(20 * HOUR) },
    { ...base, status: 'paused', observedAt: at(20 * HOUR - 60_000) },
    { ...base, status: 'running', observedAt: at(19 * HOUR) },
  ];
}

const db = await createTestDatabase('screenshots');
try {
  await migrateCatalog(db.pool);
  const now = Date.now();
  await write(db.pool, [...demoFleet(now), ...flappingHistory(now)]);
  const daemon = await startDaemon({ databaseUrl: db.url });
  try {
    await screenshot(`${daemon.url}/`, out('status-page.png'));
    await screenshot(`${daemon.url}/mirrors/fraud_signals_cdc`, out('status-page-mirror.png'));
    await screenshot(`${daemon.url}/mirrors/${FLAPPING}`, out('status-page-timeline.png'), 1280, 560);
    console.log('wrote docs/status-page.png, docs/status-page-mirror.png and docs/status-page-timeline.png');
  } finally {
    await daemon.stop();
  }
} finally {
  await db.drop();
}
