#!/usr/bin/env node
/**
 * Writes dist/build-info.json at build time: the revision the build was made from, which
 * mirrorstate_build_info reports. The daemon never runs git itself (an image has no .git): the
 * revision comes from MIRRORSTATE_REVISION (the Dockerfile passes its REVISION build argument in),
 * else from `git rev-parse HEAD` of the checkout being built, else "unknown".
 */
/* global process, URL */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

function revision() {
  const fromEnv = process.env.MIRRORSTATE_REVISION?.trim();
  if (fromEnv) return fromEnv;
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

const dist = new URL('../dist/', import.meta.url);
mkdirSync(dist, { recursive: true });
writeFileSync(new URL('build-info.json', dist), `${JSON.stringify({ revision: revision() })}\n`);
