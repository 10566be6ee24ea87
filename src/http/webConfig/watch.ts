/**
 * Rereads the web configuration file when it, or a file it names, changes. exporter-toolkit rereads
 * the file on every request and connection; here a change is noticed by fs.watch on the file's
 * directory (quick) and by a periodic reread (robust: editors that replace the file, Kubernetes'
 * ConfigMap and Secret volumes that swap a `..data` symlink, certificates renewed in another
 * directory). A reread whose digest equals the one in force changes nothing.
 *
 * A good edit is handed to `apply`; a bad one (unreadable, invalid, or refused by `apply`) keeps
 * the configuration in force and logs one warning naming the key, once per distinct problem.
 */
import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../../log.js';
import { readWebConfig, type WebConfig, WebConfigError } from './read.js';

/** How often the file is reread when no change event comes. */
export const WEB_CONFIG_POLL_INTERVAL_MS = 5_000;
/** Editors write in several steps; read once they are done. */
const SETTLE_MS = 100;

export interface WebConfigWatchOptions {
  current: WebConfig;
  /** Puts `next` in force, or throws a WebConfigError saying why it cannot. */
  apply: (next: WebConfig) => void;
  logger: Logger;
  pollIntervalMs?: number;
}

export class WebConfigWatch {
  private current: WebConfig;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private lastProblem: string | undefined;
  private readonly log: Logger;

  constructor(private readonly options: WebConfigWatchOptions) {
    this.current = options.current;
    this.log = options.logger.child({ component: 'web-config' });
  }

  start(): void {
    const path = this.current.path;
    const name = basename(path);
    try {
      this.watcher = watch(dirname(path), (_event, file) => {
        // `..data` is the symlink Kubernetes swaps when a mounted ConfigMap or Secret changes.
        if (file === null || file === name || file === '..data') this.soon();
      });
      this.watcher.on('error', () => undefined); // the directory may go away; the poll goes on
    } catch {
      // No watch on this filesystem: the poll alone notices changes.
    }
    this.timer = setInterval(() => this.check(), this.options.pollIntervalMs ?? WEB_CONFIG_POLL_INTERVAL_MS);
    this.timer.unref();
  }

  private soon(): void {
    clearTimeout(this.settle);
    this.settle = setTimeout(() => this.check(), SETTLE_MS);
    this.settle.unref();
  }

  /** Rereads now; concurrent calls fold into one reread after the one running. */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.reread().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        void this.check();
      }
    });
    return this.running;
  }

  private async reread(): Promise<void> {
    try {
      const next = await readWebConfig(this.current.path);
      if (next.fingerprint === this.current.fingerprint) {
        this.lastProblem = undefined;
        return;
      }
      this.options.apply(next);
      this.current = next;
      this.lastProblem = undefined;
      this.log.info({ tls: next.tls !== undefined, users: next.users.size }, 'web config file reloaded');
    } catch (err) {
      const problem = err instanceof WebConfigError ? err.message : `web config file ${this.current.path}: ${(err as Error).message}`;
      if (problem === this.lastProblem) return;
      this.lastProblem = problem;
      this.log.warn({ key: err instanceof WebConfigError ? err.key : undefined }, `${problem}; keeping the previous configuration`);
    }
  }

  /** Idempotent. */
  stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    clearInterval(this.timer);
    clearTimeout(this.settle);
  }
}
