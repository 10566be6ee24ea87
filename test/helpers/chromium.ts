/**
 * Debian's `chromium` in headless mode, driven through its command line: `--dump-dom` prints the DOM
 * after the page loaded and its scripts (if any) ran; `--screenshot` writes a PNG of the viewport;
 * and, for what only the laid-out page can say, evaluateInPage over the DevTools protocol.
 * A missing browser is an error, never a skip: `.ci/run` installs it (`apt-get install chromium`).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';

const run = promisify(execFile);
/**
 * Chromium's helper processes (renderer, GPU, network) outlive the browser process by a moment and
 * may still write into the profile as it is removed (seen as ENOTEMPTY under load): fs.rm retries.
 */
const PROFILE_REMOVAL = { recursive: true, force: true, maxRetries: 10, retryDelay: 100 };
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
    await rm(profile, PROFILE_REMOVAL);
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

/**
 * Loads `url` in headless Chromium and answers `expression` (JavaScript, evaluated in the page once
 * it has loaded and `settleMs` more have passed, its value returned as JSON): what the browser made
 * of the page, layout included (an element's width, a <progress>'s position), which the serialised
 * DOM cannot say. Spoken over the DevTools protocol on a pipe (`--remote-debugging-pipe`: Chromium
 * reads NUL-terminated JSON commands on fd 3 and writes its answers on fd 4), so no port or
 * WebSocket library is needed.
 */
export async function evaluateInPage<T>(url: string, expression: string, o: { width?: number; height?: number; settleMs?: number } = {}): Promise<T> {
  const profile = await mkdtemp(join(tmpdir(), 'mirrorstate-chromium-'));
  const proc = spawn(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`,
    `--window-size=${o.width ?? 1280},${o.height ?? 900}`, '--remote-debugging-pipe', 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const toBrowser = proc.stdio[3] as Writable;
  const fromBrowser = proc.stdio[4] as Readable;
  const waiting = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  const events: { method: string; sessionId?: string }[] = [];
  let nextId = 1;
  let buffered = '';
  fromBrowser.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let end: number;
    while ((end = buffered.indexOf('\0')) >= 0) {
      const message = JSON.parse(buffered.slice(0, end)) as { id?: number; result?: Record<string, unknown>; error?: { message: string }; method?: string; sessionId?: string };
      buffered = buffered.slice(end + 1);
      const w = message.id === undefined ? undefined : waiting.get(message.id);
      if (w) {
        waiting.delete(message.id!);
        if (message.error) w.reject(new Error(`chromium: ${message.error.message}`));
        else w.resolve(message.result ?? {});
      } else if (message.method) events.push({ method: message.method, sessionId: message.sessionId });
    }
  });
  const exited = new Promise<never>((_, reject) => {
    proc.on('error', (err) => reject(new Error(`${CHROMIUM} did not start: install Debian's chromium or set CHROMIUM`, { cause: err })));
    proc.on('exit', (code) => reject(new Error(`${CHROMIUM} exited (${code}): ${stderr.join('').slice(-2000)}`)));
  });
  // Awaited through the races below; between them an early exit must not go unhandled.
  exited.catch(() => undefined);
  const send = (method: string, params: object = {}, sessionId?: string) => {
    const id = nextId++;
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => waiting.set(id, { resolve, reject }));
    toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    return Promise.race([answer, exited]);
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`chromium did not answer within ${TIMEOUT_MS} ms for ${url}`)), TIMEOUT_MS);
  });
  try {
    return await Promise.race([timeout, (async () => {
      const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
      await send('Page.enable', {}, sessionId);
      await send('Page.navigate', { url }, sessionId);
      while (!events.some((e) => e.method === 'Page.loadEventFired' && e.sessionId === sessionId)) {
        await Promise.race([new Promise((r) => setTimeout(r, 20)), exited]);
      }
      // Let late events (an <img onerror>, a timer) run before the page is read.
      await new Promise((r) => setTimeout(r, o.settleMs ?? 500));
      const { result, exceptionDetails } = (await send('Runtime.evaluate', { expression, returnByValue: true }, sessionId)) as {
        result: { value: T }; exceptionDetails?: { text: string };
      };
      if (exceptionDetails) throw new Error(`the expression threw in the page: ${JSON.stringify(exceptionDetails)}`);
      return result.value;
    })()]);
  } finally {
    clearTimeout(timer);
    proc.kill('SIGKILL');
    await new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(undefined) : proc.once('exit', r)));
    await rm(profile, PROFILE_REMOVAL);
  }
}
