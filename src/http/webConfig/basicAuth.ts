/**
 * HTTP basic auth against the bcrypt hashes of a web configuration file, answered as
 * exporter-toolkit answers it (web/handler.go), so that timing says nothing about who exists:
 *
 *   - an unknown user is compared against a stand-in hash, so it costs one bcrypt comparison like a
 *     known user's wrong password (exporter-toolkit uses a fixed cost-10 hash; here the stand-in is
 *     a configured user's hash of the most common cost, so it costs what most users cost);
 *   - user names are compared in constant time (digests compared with timingSafeEqual, every
 *     configured user visited), so the lookup itself leaks nothing either;
 *   - checks are cached by (user, hash, password), the answer either way, at most CACHE_SIZE entries
 *     with random eviction: a scraper that sends the same credentials every 15 s pays bcrypt once.
 *     The key is a digest, so no password is kept in memory as text;
 *   - comparisons run one at a time (exporter-toolkit's bcryptMtx), in a worker thread: bcrypt is
 *     meant to be slow, and on the main thread it would stall every other answer, /metrics and the
 *     probes included. Beyond MAX_WAITING comparisons waiting, a request is turned away (429) at once
 *     rather than queued without bound.
 *
 * bcryptjs (pure JavaScript, no install script) does the comparing.
 */
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** exporter-toolkit's cache size. */
export const CACHE_SIZE = 100;
export const MAX_WAITING = 64;

export type AuthResult = 'ok' | 'denied' | 'busy';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcrypt);
parentPort.on('message', ({ id, password, hash }) => {
  let ok = false;
  try { ok = bcrypt.compareSync(password, hash); } catch { ok = false; }
  parentPort.postMessage({ id, ok });
});
`;

function sha256(...parts: string[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest();
}

/** The hash an unknown user is compared against: one of the users' of the most common cost. */
function standInHash(users: ReadonlyMap<string, string>): string | undefined {
  const byCost = new Map<string, string>();
  const count = new Map<string, number>();
  for (const hash of users.values()) {
    const cost = hash.split('$')[2] ?? '';
    if (!byCost.has(cost)) byCost.set(cost, hash);
    count.set(cost, (count.get(cost) ?? 0) + 1);
  }
  const [cost] = [...count].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0] ?? [];
  return cost === undefined ? undefined : byCost.get(cost);
}

/** RFC 7617 credentials, as Go's Request.BasicAuth reads them; undefined when absent or malformed. */
export function parseBasicAuth(header: string | undefined): { user: string; password: string } | undefined {
  if (header === undefined || header.length < 6 || header.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const encoded = header.slice(6);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

class CheckCache {
  private readonly entries = new Map<string, boolean>();

  get(key: string): boolean | undefined {
    return this.entries.get(key);
  }

  set(key: string, ok: boolean): void {
    if (this.entries.size >= CACHE_SIZE) {
      // As exporter-toolkit: a tenth at random, so eviction is neither skewed nor on every insert.
      const keys = [...this.entries.keys()];
      for (let i = 0; i <= Math.max(Math.floor(keys.length / 10), 1); i++) {
        const j = randomInt(keys.length);
        this.entries.delete(keys[j] as string);
      }
    }
    this.entries.set(key, ok);
  }
}

/** One worker thread that compares one password at a time, in arrival order. */
class BcryptWorker {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (ok: boolean) => void; reject: (err: Error) => void }>();

  get waiting(): number {
    return this.pending.size;
  }

  compare(password: string, hash: string): Promise<boolean> {
    const worker = this.worker ?? this.spawn();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, password, hash });
    });
  }

  private spawn(): Worker {
    const bcrypt = createRequire(import.meta.url).resolve('bcryptjs');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcrypt } });
    worker.unref(); // a comparison in flight must not keep a stopping daemon alive
    worker.on('message', ({ id, ok }: { id: number; ok: boolean }) => {
      this.pending.get(id)?.resolve(ok);
      this.pending.delete(id);
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const { reject } of this.pending.values()) reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the bcrypt worker exited (${code})`)));
    this.worker = worker;
    return worker;
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}

export class BasicAuth {
  private users: { digest: Buffer; hash: string }[] = [];
  private standIn: string | undefined;
  private readonly cache = new CheckCache();
  private readonly bcrypt = new BcryptWorker();

  constructor(users: ReadonlyMap<string, string>) {
    this.setUsers(users);
  }

  /** False when the file lists no user: then every request passes, as with exporter-toolkit. */
  get enabled(): boolean {
    return this.users.length > 0;
  }

  setUsers(users: ReadonlyMap<string, string>): void {
    this.users = [...users].map(([user, hash]) => ({ digest: sha256(user), hash }));
    this.standIn = standInHash(users);
  }

  async check(authorization: string | undefined): Promise<AuthResult> {
    const credentials = parseBasicAuth(authorization);
    if (credentials === undefined || this.standIn === undefined) return 'denied';
    const wanted = sha256(credentials.user);
    let known = false;
    let hash = this.standIn;
    for (const user of this.users) {
      const same = timingSafeEqual(user.digest, wanted);
      known ||= same;
      hash = same ? user.hash : hash;
    }
    const key = sha256(credentials.user, hash, credentials.password).toString('hex');
    let ok = this.cache.get(key);
    if (ok === undefined) {
      if (this.bcrypt.waiting >= MAX_WAITING) return 'busy';
      ok = await this.bcrypt.compare(credentials.password, hash);
      this.cache.set(key, ok);
    }
    return ok && known ? 'ok' : 'denied';
  }

  stop(): Promise<void> {
    return this.bcrypt.stop();
  }
}
