/**
 * Metrics sharding (`MIRRORSTATE_METRICS_SHARD=i/n`; docs/metrics.md, Sharding), as
 * kube-state-metrics shards: replica i of n exports the per-mirror series of the mirrors whose
 * shard is i, and its own families always, so n replicas together export every mirror exactly once.
 *
 * The shard of a mirror: the first 4 bytes of SHA-256 of its UTF-8 name, read as an unsigned
 * big-endian 32-bit integer, modulo n. Example: `orders_cdc` hashes to 0xdaa40a06 = 3668183558,
 * so it is in shard 2 of 4 (3668183558 mod 4) and shard 2 of 3. The catalog stores the integer
 * (`mirrors.shard_hash`, migrations/*_shard_hash.sql) so a scrape filters on it in SQL. The same in Python:
 * `int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], 'big') % n`.
 */
import { createHash } from 'node:crypto';

export interface Shard {
  index: number;
  count: number;
}

export const NO_SHARDING: Shard = { index: 0, count: 1 };

/**
 * `MIRRORSTATE_METRICS_SHARD=auto` before it is resolved (config.ts): compared by identity, never
 * served. A StatefulSet of n pods gives each its ordinal; config.ts reads it with autoShardIndex.
 */
export const AUTO_SHARD: Shard = Object.freeze({ index: -1, count: -1 });

/**
 * The pod's ordinal in its StatefulSet, and where it came from: MIRRORSTATE_POD_INDEX (the
 * `apps.kubernetes.io/pod-index` label through the downward API, Kubernetes 1.28+), else the
 * trailing `-<i>` of POD_NAME (the downward API's metadata.name), else of HOSTNAME (a StatefulSet
 * pod's host name is its pod name). Undefined when none of them tells.
 */
export function autoShardIndex(env: NodeJS.ProcessEnv, podIndex: number | undefined): { index: number; from: string } | undefined {
  if (podIndex !== undefined) return { index: podIndex, from: `MIRRORSTATE_POD_INDEX=${podIndex}` };
  for (const name of ['POD_NAME', 'HOSTNAME'] as const) {
    const value = env[name];
    if (!value) continue;
    const match = /-(0|[1-9]\d{0,3})$/.exec(value);
    return match ? { index: Number(match[1]), from: `${name}=${value}` } : undefined;
  }
  return undefined;
}

/** The 32-bit hash every shard assignment derives from (`mirrors.shard_hash`). */
export function shardHash(mirror: string): number {
  return createHash('sha256').update(mirror, 'utf8').digest().readUInt32BE(0);
}

export function shardOf(mirror: string, count: number): number {
  return shardHash(mirror) % count;
}

/** `i/n` with 0 ≤ i < n ≤ 1024, or `auto` (AUTO_SHARD). */
export function parseShard(raw: string): Shard | { error: string } {
  if (raw.trim() === 'auto') return AUTO_SHARD;
  const match = /^\s*(\d{1,4})\s*\/\s*(\d{1,4})\s*$/.exec(raw);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || count > 1024 || index >= count) {
    return { error: `must be i/n with 0 ≤ i < n ≤ 1024 (this replica's shard of n) or auto, got "${raw}"` };
  }
  return { index, count };
}
