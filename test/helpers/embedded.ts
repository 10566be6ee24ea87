/** Clean-up for tests that start the embedded PostgreSQL: its cluster may live outside the data directory. */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { SHARED_HOME } from '../../src/embedded/placement.js';

/** Removes the cluster a data directory points at under /var/lib/mirrorstate (as root, from a private directory). */
export function removeEmbeddedData(dataDir: string): void {
  let cluster: string;
  try {
    cluster = readFileSync(path.join(dataDir, 'location'), 'utf8').trim();
  } catch {
    return; // in place: goes with the data directory
  }
  const home = path.dirname(cluster);
  if (path.dirname(home) === SHARED_HOME) rmSync(home, { recursive: true, force: true });
}
