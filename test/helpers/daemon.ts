/**
 * Starts the built daemon (`dist/cli/index.js`) as a process, the way an operator would, on a free port
 * it reports in its log, and talks to it over HTTP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));

export interface DaemonProcess {
  proc: ChildProcess;
  port: number;
  url: string;
  /** Everything the process wrote, stdout and stderr. */
  output(): string;
  /** SIGTERM (or the given signal) and wait for the exit; resolves to the exit code or signal. */
  stop(signal?: NodeJS.Signals): Promise<number | string | null>;
}

export interface DaemonOptions {
  /** Undefined: no DATABASE_URL at all, so the daemon starts its embedded PostgreSQL. */
  databaseUrl: string | undefined;
  cwd?: string;
  env?: Record<string, string>;
  args?: string[];
  /** Another build's dist/cli/index.js (the bench's same-run baseline); default this checkout's. */
  cli?: string;
}

export async function startDaemon(options: DaemonOptions): Promise<DaemonProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  const proc = spawn(process.execPath, [options.cli ?? CLI, 'run', ...(options.args ?? [])], {
    cwd: options.cwd,
    env: {
      ...env,
      ...(options.databaseUrl === undefined ? {} : { DATABASE_URL: options.databaseUrl }),
      MIRRORSTATE_HTTP_PORT: '0',
      MIRRORSTATE_HTTP_HOST: '127.0.0.1',
      MIRRORSTATE_LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  proc.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(proc, 'exit');
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL'); // never leave a half-started daemon behind
      reject(new Error(`daemon did not start within 60 s:\n${output}`));
    }, 60_000);
    const onData = () => {
      const match = /"port":(\d+),"msg":"mirrorstate running"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    proc.stdout?.on('data', onData);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${code ?? signal}) before it was running:\n${output}`));
    });
  });
  return {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode;
      proc.kill(signal);
      const [code, sig] = (await exited) as [number | null, string | null];
      return code ?? sig;
    },
  };
}

/** Polls `check` until it returns true or the time runs out (then throws with `what`). */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
