/** What the benchmark sections share. */
import { get } from 'node:http';

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** A duration in milliseconds as the tables print it: `12.3 ms`. */
export const ms = (x: number): string => `${x.toFixed(1)} ms`;

/**
 * How many times `needle` occurs in the body of GET `url`, counted over the stream as it arrives:
 * a /metrics body of 10^5 tables is about 50 MB, and decoding it into one string per check (as
 * `fetch().text()` does) costs the bench process more than the daemon spends answering, on the same
 * two cores. Counts every occurrence, also across chunk boundaries.
 */
export function countInBody(url: string, needle: string): Promise<number> {
  const pattern = Buffer.from(needle);
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let count = 0;
      let carry = Buffer.alloc(0);
      res.on('data', (chunk: Buffer) => {
        const text = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
        for (let at = text.indexOf(pattern); at >= 0; at = text.indexOf(pattern, at + pattern.length)) count++;
        // Keep what could be the start of a match cut by the chunk's end (never a whole match).
        carry = Buffer.from(text.subarray(Math.max(0, text.length - pattern.length + 1)));
      });
      res.on('end', () => resolve(count));
      res.on('error', reject);
    }).on('error', reject);
  });
}
