import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

/** Replaces the password of a connection URL, so a URL can be logged or printed. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|secret|token/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return '<unparseable url>';
  }
}

/**
 * The root logger. Components take `logger.child({ component })`. Anything under a key that
 * names a secret is censored, wherever in the object it sits.
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['password', '*.password', 'token', '*.token', 'ingestToken', '*.ingestToken', 'authorization', '*.authorization'],
        censor: '***',
      },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
