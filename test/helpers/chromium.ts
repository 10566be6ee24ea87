/**
 * Debian's `chromium` in headless mode, driven through its command line: `--dump-dom` prints the DOM
 * after the page loaded and its scripts (if any) ran; `--screenshot` writes a PNG of the viewport.
 * A missing browser is an error, never a skip: `.ci/run` installs it (`apt-get install chromium`).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const CHROMIUM = process.env.CHROMIUM ?? 'chromium';
const TIMEOUT_MS = 60_000;

async function chromium(args: string[]): Promise<string> {
  // A profile of its own per run: parallel test files must not share one (Chromium locks it).
  const profile = await mkdtemp(join(tmpdir(), 'mirrorstate-chromium-'));
  try {
    const { stdout } = await run(CHROMIUM, [
      '--headless',
      // The sandbox cannot start as root (CI containers); these pages are our own, under test.
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--hide-scrollbars',
      `--user-data-dir=${profile}`,
      // Let timers and late events (an <img onerror>) run before the DOM is read.
      '--virtual-time-budget=2000',
      ...args,
    ], { timeout: TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium; .ci/run does) or set CHROMIUM`, { cause: err });
    }
    throw err;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The serialised DOM of `url` after it loaded. */
export async function dumpDom(url: string): Promise<string> {
  const dom = await chromium(['--dump-dom', url]);
  // Chromium prints nothing when the page never finished (a script's alert() blocks it, for one).
  if (!dom.includes('</html>')) throw new Error(`chromium printed no DOM for ${url}: the page did not finish loading`);
  return dom;
}

/** A PNG of the viewport of `url`. */
export async function screenshot(url: string, file: string, width = 1280, height = 900): Promise<void> {
  await chromium([`--window-size=${width},${height}`, `--screenshot=${file}`, url]);
}
