/**
 * Metrics sharding and gzip, from outside: three daemon processes on one catalog, shards 0/3, 1/3
 * and 2/3, scraped over HTTP as Prometheus would. Together they export every live mirror exactly
 * once (complete and disjoint), each mirror on the shard the documented hash names, and each
 * exports its own families. Three more started as a StatefulSet starts its pods (shard `auto`, the
 * pod names mirrorstate-0..2) split the fleet the same way. A gzip answer decodes to exactly the
 * plain answer, in both formats.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { crc32, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { parseShard, shardOf } from '../../src/metrics/shard.js';
import { CLI, type DaemonProcess, startDaemon, waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { putMirror } from './fixtures.js';

const SHARDS = 3;
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
/** What `npm run build` recorded (scripts/build-info.mjs): this checkout's commit. */
const REVISION = (JSON.parse(readFileSync(new URL('../../dist/build-info.json', import.meta.url), 'utf8')) as { revision: string }).revision;
const MIRRORS = [
  ...Array.from({ length: 60 }, (_, i) => `mirror_${String(i).padStart(6, '0')}`),
  'orders_cdc', 'zählwerk "q"', 'back\\slash', 'émoji 🚀 with spaces',
];

let db: TestDatabase;
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase('metrics_shards');
  // The first daemon migrates; the catalog is then filled directly, as the scrape bench does.
  daemons.push(await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_METRICS_SHARD: `0/${SHARDS}` } }));
  for (const [i, mirror] of MIRRORS.entries()) {
    await putMirror(db.pool, 'mirrorstate', { mirror, status: i % 2 ? 'running' : 'failed', statusSince: '2026-11-21T10:00:00Z', observedAt: '2026-11-21T10:00:00Z' });
  }
  await db.pool.query(`update mirrorstate.mirrors set dropped_at = now() where mirror = 'mirror_000007'`);
  for (let i = 1; i < SHARDS; i++) {
    daemons.push(await startDaemon({ databaseUrl: db.url, args: ['--metrics-shard', `${i}/${SHARDS}`] }));
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  await db?.drop();
});

async function get(url: string, headers: Record<string, string> = {}): Promise<{ body: Buffer; encoding: string | null }> {
  // node's fetch would decode gzip itself: ask with node:http semantics by reading the raw bytes.
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(`${url}/metrics`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ body: Buffer.concat(chunks), encoding: res.headers['content-encoding'] ?? null }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const mirrorsIn = (text: string) =>
  new Set([...text.matchAll(/^peerdb_mirror_info\{mirror="((?:[^"\\]|\\.)*)"/gm)].map((m) => m[1]!.replace(/\\(.)/g, '$1')));

describe('MIRRORSTATE_METRICS_SHARD', () => {
  it('hashes names as documented', () => {
    // docs/metrics.md (Sharding) and shard.ts: first 4 bytes of sha256(UTF-8 name), big-endian, mod n.
    expect([shardOf('orders_cdc', 4), shardOf('orders_cdc', 3), shardOf('mirror_000001', 4), shardOf('zählwerk "q"', 4)]).toEqual([2, 2, 2, 1]);
    expect(shardOf('anything', 1)).toBe(0);
  });

  it.each([['0/1', { index: 0, count: 1 }], ['3/4', { index: 3, count: 4 }], [' 1 / 2 ', { index: 1, count: 2 }]])('parses %j', (raw, shard) => {
    expect(parseShard(raw)).toEqual(shard);
  });

  it.each(['4/4', '1/0', '-1/2', 'a/b', '1', '0/2000', ''])('refuses %j naming the setting', (raw) => {
    expect(() => loadConfig({ MIRRORSTATE_METRICS_SHARD: raw === '' ? ' ' : raw })).toThrow(/MIRRORSTATE_METRICS_SHARD \/ --metrics-shard must be i\/n/);
  });

  it('splits the fleet over the replicas: complete, disjoint, by the documented hash, daemon families on each', async () => {
    await expectCompleteAndDisjoint(daemons);
  });
});

/** Scrapes every replica until together they list the live fleet, then checks how they split it. */
async function expectCompleteAndDisjoint(replicas: DaemonProcess[]): Promise<void> {
  const live = MIRRORS.filter((m) => m !== 'mirror_000007');
  let texts: string[] = [];
  await waitFor('every shard lists its mirrors', async () => {
    texts = await Promise.all(replicas.map(async (d) => (await get(d.url)).body.toString('utf8')));
    return texts.reduce((n, t) => n + mirrorsIn(t).size, 0) >= live.length;
  });
  const seen = new Map<string, number>();
  for (const [shard, text] of texts.entries()) {
    for (const mirror of mirrorsIn(text)) {
      expect(seen.has(mirror), `${mirror} on two shards`).toBe(false);
      seen.set(mirror, shard);
      expect(shardOf(mirror, SHARDS), mirror).toBe(shard);
    }
    expect(text).toMatch(/^mirrorstate_catalog_up 1$/m);
    expect(text).toMatch(/^mirrorstate_updates_total\{result="applied"\} /m);
    expect(text).toMatch(/^process_resident_memory_bytes /m);
    // Each replica says which shard it serves, for the shard alerts (docs/operating.md).
    expect(text).toMatch(new RegExp(`^mirrorstate_shard_ordinal ${shard}$`, 'm'));
    expect(text).toMatch(new RegExp(`^mirrorstate_total_shards ${SHARDS}$`, 'm'));
    expect(text).toContain(`mirrorstate_build_info{version="${VERSION}",revision="${REVISION}",nodejs="${process.version}"} 1\n`);
  }
  expect([...seen.keys()].sort()).toEqual([...live].sort());
  // Every shard holds some of the fleet, or the test would not tell a filter from none.
  expect(texts.map((t) => mirrorsIn(t).size).every((n) => n > 0 && n < live.length)).toBe(true);
}

describe('MIRRORSTATE_METRICS_SHARD=auto', () => {
  const auto = { MIRRORSTATE_METRICS_SHARD: 'auto', MIRRORSTATE_METRICS_TOTAL_SHARDS: '3' };

  it.each([
    ['a StatefulSet pod name in HOSTNAME', { HOSTNAME: 'mirrorstate-2' }, { index: 2, count: 3 }],
    ['POD_NAME over HOSTNAME', { POD_NAME: 'mirrorstate-1', HOSTNAME: 'mirrorstate-2' }, { index: 1, count: 3 }],
    ['the pod-index label over the name', { MIRRORSTATE_POD_INDEX: '0', POD_NAME: 'mirrorstate-1' }, { index: 0, count: 3 }],
    ['a name with dashes and digits', { POD_NAME: 'mirrorstate-eu-2-0' }, { index: 0, count: 3 }],
  ])('takes the ordinal from %s', (_what, env, shard) => {
    expect(loadConfig({ ...auto, ...env }).metricsShard).toEqual(shard);
  });

  it.each([
    ['no ordinal anywhere', { ...auto }, /MIRRORSTATE_METRICS_SHARD=auto cannot tell this pod's ordinal: set MIRRORSTATE_POD_INDEX/],
    ['a pod name without one', { ...auto, POD_NAME: 'mirrorstate-7f9c8d-xk2p9x', HOSTNAME: 'mirrorstate-1' }, /cannot tell this pod's ordinal.*POD_NAME="mirrorstate-7f9c8d-xk2p9x"/],
    ['an ordinal beyond the total', { ...auto, HOSTNAME: 'mirrorstate-3' }, /ordinal 3 \(from HOSTNAME=mirrorstate-3\) is not below MIRRORSTATE_METRICS_TOTAL_SHARDS=3/],
    ['no total', { MIRRORSTATE_METRICS_SHARD: 'auto', HOSTNAME: 'mirrorstate-0' }, /auto needs MIRRORSTATE_METRICS_TOTAL_SHARDS/],
    ['a total without auto', { MIRRORSTATE_METRICS_SHARD: '1/3', MIRRORSTATE_METRICS_TOTAL_SHARDS: '3' }, /MIRRORSTATE_METRICS_TOTAL_SHARDS \/ --metrics-total-shards applies only with MIRRORSTATE_METRICS_SHARD=auto/],
  ])('refuses %s, naming the setting', (_what, env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('stops the daemon before it starts when the ordinal cannot be told', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...auto, DATABASE_URL: db.url, HOSTNAME: 'mirrorstate' };
    delete env.POD_NAME;
    const r = spawnSync(process.execPath, [CLI, 'run'], { env, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("MIRRORSTATE_METRICS_SHARD=auto cannot tell this pod's ordinal");
    expect(r.stdout).not.toContain('mirrorstate running');
  });

  it("splits the fleet over a StatefulSet's pods mirrorstate-0..2: complete and disjoint", async () => {
    const pods: DaemonProcess[] = [];
    try {
      // Started in the StatefulSet's order; each has the host name Kubernetes gives it and nothing else.
      for (let i = 0; i < SHARDS; i++) {
        pods.push(await startDaemon({ databaseUrl: db.url, env: { ...auto, HOSTNAME: `mirrorstate-${i}`, POD_NAME: '' } }));
      }
      await expectCompleteAndDisjoint(pods);
    } finally {
      await Promise.all(pods.map((d) => d.stop()));
    }
  });
});

describe('gzip', () => {
  /** A gzip answer and a plain one, scraped one after the other: the gzip one decodes to the plain one. */
  async function expectGzipEqualsPlain(url: string, accept: string): Promise<string> {
    const zipped = await get(url, { accept, 'accept-encoding': 'gzip, deflate' });
    const plain = await get(url, { accept });
    expect(zipped.encoding).toBe('gzip');
    expect(plain.encoding).toBe(null);
    expect(zipped.body.length).toBeLessThan(plain.body.length);
    // The scrape's own timing families differ between two scrapes; everything else must not.
    // (Node's own samples come and go too: a GC of a new kind adds a series.)
    const volatile = /^(mirrorstate_scrape_duration_seconds|mirrorstate_snapshot_timestamp_seconds|process_|nodejs_|mirrorstate_queue_jobs)/;
    const steady = (text: string) => text.split('\n').filter((line) => !volatile.test(line)).join('\n');
    const a = gunzipSync(zipped.body).toString('utf8');
    const b = plain.body.toString('utf8');
    expect(steady(a)).toBe(steady(b));
    expect(a.includes('peerdb_mirror_status{')).toBe(true);
    if (accept.startsWith('application/openmetrics-text')) expect(a.endsWith('# EOF\n')).toBe(true);
    // One gzip member, not several: its trailer holds the CRC-32 and length of the whole text
    // (a reader such as curl 7.88 stops after the first member of a multi-member stream).
    expect(zipped.body.readUInt32LE(zipped.body.length - 8)).toBe(crc32(Buffer.from(a, 'utf8')));
    expect(zipped.body.readUInt32LE(zipped.body.length - 4)).toBe(Buffer.byteLength(a, 'utf8'));
    return a;
  }

  it.each([
    ['text', 'text/plain;version=0.0.4'],
    ['openmetrics', 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'],
  ])('decodes to exactly the plain answer (%s)', async (_format, accept) => {
    // Twice: the first gzip scrape compresses, the second serves cached members.
    for (let i = 0; i < 2; i++) await expectGzipEqualsPlain(daemons[0]!.url, accept);
  });

  it('decodes to exactly the plain answer after mirrors changed some of their families', async () => {
    const url = daemons[0]!.url;
    await expectGzipEqualsPlain(url, 'text/plain');
    // A lag changes one family of a mirror, a status several: the buckets holding them are
    // rebuilt, and the families whose text stayed the same keep their compressed pieces.
    // Some mirrors of daemon 0's shard get a new lag, others a new status.
    const shard0 = `shard_hash % ${SHARDS} = 0 and mirror like 'mirror_%'`;
    await db.pool.query(`update mirrorstate.mirrors set lag_seconds = 4.25, updated_at = clock_timestamp() where ${shard0} and mirror < 'mirror_000030'`);
    await db.pool.query(`update mirrorstate.mirrors set status = 'paused', updated_at = clock_timestamp() where ${shard0} and mirror >= 'mirror_000030'`);
    // The daemon reads the changes when the catalog reports them, within a second (snapshot.ts);
    // the comparison then runs on the changed cache.
    const changed = (text: string) =>
      /^peerdb_mirror_lag_seconds\{mirror="mirror_0000[0-2]\d"\} 4\.25$/m.test(text) &&
      /^peerdb_mirror_status\{mirror="mirror_0000[3-9]\d",status="paused"\} 1$/m.test(text);
    await waitFor('the changes on /metrics', async () => changed((await get(url, { accept: 'text/plain' })).body.toString('utf8')));
    expect(changed(await expectGzipEqualsPlain(url, 'text/plain'))).toBe(true);
  });

  it('stays plain when gzip is refused', async () => {
    const res = await get(daemons[0]!.url, { 'accept-encoding': 'gzip;q=0, identity' });
    expect(res.encoding).toBe(null);
    expect(res.body.toString('utf8')).toMatch(/^peerdb_mirror_info\{/m);
  });
});
