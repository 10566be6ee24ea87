/** What the benchmark sections share. */

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** A duration in milliseconds as the tables print it: `12.3 ms`. */
export const ms = (x: number): string => `${x.toFixed(1)} ms`;
