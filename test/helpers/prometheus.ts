/**
 * Prometheus's own programs, for the tests that run them: `promtool` (exposition, rules) and the
 * `prometheus` server. A test file that imports this module gets Debian's prometheus package
 * installed first when it is missing (test/setup/tools.ts); a missing program is an error, never a skip.
 */
import { spawnSync } from 'node:child_process';

export const PROMETHEUS = 'prometheus';
export const PROMTOOL = 'promtool';

/** Runs promtool to its end: its exit code and everything it wrote. */
export function promtool(args: string[], options: { input?: string; cwd?: string } = {}): { code: number | null; output: string } {
  const r = spawnSync(PROMTOOL, args, { encoding: 'utf8', ...options });
  if (r.error) throw new Error('promtool not found: install prometheus (apt-get install prometheus)', { cause: r.error });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** `promtool check metrics` on `text`: its complaints, one per line. */
export function promtoolCheckMetrics(text: string): string[] {
  return promtool(['check', 'metrics'], { input: text }).output.split('\n').filter((l) => l.trim() !== '');
}
