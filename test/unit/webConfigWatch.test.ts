/**
 * The web configuration file reread while running, on a real filesystem: a Kubernetes-style
 * `..data` symlink swap, a bad edit warned about once and kept out, and a refusal by `apply`.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import bcrypt from 'bcryptjs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { BasicAuth, MAX_WAITING } from '../../src/http/webConfig/basicAuth.js';
import { readWebConfig, type WebConfig, WebConfigError } from '../../src/http/webConfig/read.js';
import { WebConfigWatch } from '../../src/http/webConfig/watch.js';
import { createLogger } from '../../src/log.js';
import { waitFor } from '../helpers/daemon.js';

// exporter-toolkit's testdata hash (cost 10) of a user named carol.
const CAROL = '$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu';

let dir: string;
let lines: string[];
const logger = () =>
  createLogger('info', new Writable({ write: (chunk: Buffer, _enc, done) => { lines.push(chunk.toString()); done(); } }));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ms-webwatch-'));
  lines = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A volume as the kubelet lays it out: web.yml → ..data/web.yml, ..data → a timestamped directory. */
function volume(version: string, yaml: string): void {
  mkdirSync(join(dir, version));
  writeFileSync(join(dir, version, 'web.yml'), yaml);
  symlinkSync(version, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data')); // the atomic swap
}

it('follows a ConfigMap-style ..data symlink swap, and keeps a bad version out, warning once', async () => {
  volume('..v1', `basic_auth_users:\n  carol: ${CAROL}\n`);
  symlinkSync('..data/web.yml', join(dir, 'web.yml'));
  const applied: WebConfig[] = [];
  const watch = new WebConfigWatch({
    current: await readWebConfig(join(dir, 'web.yml')),
    apply: (next) => applied.push(next),
    logger: logger(),
    pollIntervalMs: 60_000, // only the watch can notice within the test
  });
  watch.start();
  try {
    volume('..v2', `basic_auth_users:\n  carol: ${CAROL}\n  dave: ${CAROL}\n`);
    await waitFor('the swap applied', () => applied.length === 1, 10_000);
    expect([...(applied[0]?.users.keys() ?? [])]).toEqual(['carol', 'dave']);

    volume('..v3', 'basic_auth_users:\n  dave: plain\n');
    await waitFor('the warning', () => lines.some((l) => l.includes('basic_auth_users.dave: is not a bcrypt hash')), 10_000);
    await watch.check();
    await watch.check();
    expect(lines.filter((l) => l.includes('keeping the previous configuration'))).toHaveLength(1);
    expect(applied).toHaveLength(1);
  } finally {
    watch.stop();
  }
});

it('a refusal by apply keeps the configuration in force, and the same file is not applied twice', async () => {
  const path = join(dir, 'web.yml');
  writeFileSync(path, '');
  let calls = 0;
  const watch = new WebConfigWatch({
    current: await readWebConfig(path),
    apply: (next) => {
      calls++;
      throw new WebConfigError(next.path, 'tls_server_config', 'turning TLS on or off takes a restart of the daemon');
    },
    logger: logger(),
  });
  writeFileSync(path, `basic_auth_users:\n  carol: ${CAROL}\n`);
  await watch.check();
  await watch.check();
  expect(calls).toBe(2); // still not in force, so tried again, but said once
  expect(lines.filter((l) => l.includes('tls_server_config: turning TLS on or off'))).toHaveLength(1);
  writeFileSync(path, '');
  await watch.check();
  expect(calls).toBe(2); // back to the file in force: nothing to apply
});

it(`turns a request away (busy) rather than queue more than ${MAX_WAITING} comparisons`, async () => {
  // Cost 4, the least bcrypt takes: the comparisons that are queued finish quickly.
  const auth = new BasicAuth(new Map([['carol', bcrypt.hashSync('right', 4)]]));
  const basic = (i: number) => `Basic ${Buffer.from(`carol:guess-${i}`).toString('base64')}`;
  try {
    const results = await Promise.all(Array.from({ length: MAX_WAITING + 8 }, (_, i) => auth.check(basic(i))));
    expect(results.filter((r) => r === 'busy')).toHaveLength(8);
    expect(results.filter((r) => r === 'denied')).toHaveLength(MAX_WAITING);
  } finally {
    await auth.stop();
  }
});
