/**
 * What `mirrorstate_build_info` reports: the version from package.json, the revision written into
 * dist/build-info.json when the build ran (scripts/build-info.mjs: the REVISION build argument of
 * the image, or the checkout's git commit), and the Node.js version running the process. Read once;
 * a missing or unreadable file reports "unknown" rather than stopping the daemon.
 */
import { readFileSync } from 'node:fs';

export interface BuildInfo {
  version: string;
  revision: string;
  nodejs: string;
}

function readJson(relative: string): Record<string, unknown> {
  try {
    // src/buildInfo.ts and dist/buildInfo.js sit one level under the package root alike.
    return JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function text(value: unknown): string {
  return typeof value === 'string' && value.length > 0 ? value : 'unknown';
}

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  cached ??= {
    version: text(readJson('../package.json').version),
    revision: text(readJson('../dist/build-info.json').revision),
    nodejs: process.version,
  };
  return cached;
}
