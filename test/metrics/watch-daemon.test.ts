/**
 * The daemon process, scraped as Prometheus scrapes it, reads the catalog only when the catalog
 * changed (snapshot.ts): seen from PostgreSQL's side, its metrics connections stay idle through
 * scrapes of a quiet catalog while the listening connection answers each scrape's `select 1`, and
 * each answer is dated at its scrape; a change written by hand reaches /metrics and is read once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { valueOf } from '../helpers/scrape.js';
import { putMirror } from './fixtures.js';

let db: TestDatabase;
let daemon: DaemonProcess;

interface Backend {
  name: string;
  pid: number;
  query: string;
  stateChange: string;
}

async function metricsBackends(): Promise<Backend[]> {
  const { rows } = await db.pool.query<Backend>(
    `select application_name as name, pid, query, state_change::text as "stateChange" from pg_stat_activity
     where datname = current_database() and application_name like 'mirrorstate-metrics%' order by pid`,
  );
  return rows;
}

async function scrape(): Promise<{ askedAt: number; text: string }> {
  const askedAt = Date.now();
  const text = await (await fetch(`${daemon.url}/metrics`)).text();
  return { askedAt, text };
}

beforeAll(async () => {
  db = await createTestDatabase('metrics_watch_daemon');
  daemon = await startDaemon({ databaseUrl: db.url });
  const at = new Date().toISOString();
  for (const mirror of ['alpha', 'beta', 'gamma']) {
    await putMirror(db.pool, 'mirrorstate', { mirror, status: 'running', statusSince: at, observedAt: at, lagSeconds: 1 });
  }
  await waitFor('the mirrors on /metrics', async () => (await scrape()).text.includes('mirror="gamma"'));
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

it('answers scrapes of a quiet catalog without reading it, and reads a change once', async () => {
  // Past the gap since the last read, with nothing pending.
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  await scrape();
  const before = await metricsBackends();
  const readers = before.filter((b) => b.name === 'mirrorstate-metrics');
  expect(readers.length).toBeGreaterThan(0);
  expect(before.filter((b) => b.name === 'mirrorstate-metrics-watch')).toHaveLength(1);

  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { askedAt, text } = await scrape();
    expect(valueOf(text, 'mirrorstate_catalog_up')).toBe(1);
    // Dated at the scrape: the cache was proven current when it came.
    expect(valueOf(text, 'mirrorstate_snapshot_timestamp_seconds')! * 1000).toBeGreaterThanOrEqual(askedAt);
    expect(text).toContain('peerdb_mirror_lag_seconds{mirror="beta"} 1\n');
  }
  const after = await metricsBackends();
  // The readers did nothing; the listening connection answered the scrapes.
  for (const reader of readers) expect(after.find((b) => b.pid === reader.pid)?.stateChange).toBe(reader.stateChange);
  const watch = after.find((b) => b.name === 'mirrorstate-metrics-watch')!;
  expect(watch.query).toBe('select 1');
  expect(watch.stateChange).not.toBe(before.find((b) => b.name === 'mirrorstate-metrics-watch')!.stateChange);

  await db.pool.query(`update mirrorstate.mirrors set lag_seconds = 42, updated_at = clock_timestamp() where mirror = 'beta'`);
  await waitFor('the change on /metrics', async () => (await scrape()).text.includes('peerdb_mirror_lag_seconds{mirror="beta"} 42\n'));
  const read = await metricsBackends();
  expect(readers.some((r) => read.find((b) => b.pid === r.pid)?.stateChange !== r.stateChange)).toBe(true);
});
