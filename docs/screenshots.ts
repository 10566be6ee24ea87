/**
 * `npm run screenshots`: the status-page images in this folder, made the way a user would see the
 * pages. A fresh database on the test server (TEST_DATABASE_URL) gets the demo fleet of
 * test/helpers/demoFleet.ts, the built daemon serves it, and headless Chromium photographs `/` and
 * one mirror's page at 1280×900. The database is dropped afterwards.
 */
import { fileURLToPath } from 'node:url';
import { screenshot } from '../test/helpers/chromium.js';
import { startDaemon } from '../test/helpers/daemon.js';
import { createTestDatabase } from '../test/helpers/db.js';
import { demoFleet } from '../test/helpers/demoFleet.js';
import { migrateCatalog, write } from '../test/reads/support.js';

const out = (name: string) => fileURLToPath(new URL(name, import.meta.url));

const db = await createTestDatabase('screenshots');
try {
  await migrateCatalog(db.pool);
  await write(db.pool, demoFleet(Date.now()));
  const daemon = await startDaemon({ databaseUrl: db.url });
  try {
    await screenshot(`${daemon.url}/`, out('status-page.png'));
    await screenshot(`${daemon.url}/mirrors/fraud_signals_cdc`, out('status-page-mirror.png'));
    console.log('wrote docs/status-page.png and docs/status-page-mirror.png');
  } finally {
    await daemon.stop();
  }
} finally {
  await db.drop();
}
