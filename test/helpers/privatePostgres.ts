/**
 * A PostgreSQL server of the test's own, for tests that stop and start a server (never the
 * machine's shared one): initdb into a temporary directory, a free port, the machine's binaries
 * (PG_BIN, else /usr/lib/postgresql/15/bin) or else the embedded ones that `npm ci` brings, placed
 * where the user that runs them can reach them (src/embedded/placement.ts). PostgreSQL refuses to
 * run as root, so as root (CI) every command runs as the user `postgres` through runuser.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { placeBinaries } from '../../src/embedded/placement.js';

const exec = promisify(execFile);
const asRoot = process.getuid?.() === 0;

async function binDir(): Promise<string> {
  for (const dir of [process.env.PG_BIN, '/usr/lib/postgresql/15/bin']) {
    if (dir && existsSync(path.join(dir, 'pg_ctl'))) return dir;
  }
  const { binaries } = await placeBinaries();
  const dir = path.dirname(binaries.postgres);
  if (!existsSync(path.join(dir, 'pg_ctl'))) throw new Error(`no pg_ctl beside ${binaries.postgres}: set PG_BIN`);
  return dir;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface PrivatePostgres {
  port: number;
  url(database: string): string;
  /** The superuser over the Unix socket: works whatever pg_hba says of TCP. */
  socket(database: string): pg.ClientConfig;
  createDatabase(name: string): Promise<string>;
  /** pg_ctl stop -m fast: sessions are ended (57P01), the server is gone until start(). */
  stop(): Promise<void>;
  /** Resolves once the server takes connections again. */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export interface PrivatePostgresOptions {
  /** ssl=on with this certificate and key (PEM text), and the CA that signs client certificates. */
  tls?: { cert: string; key: string; ca?: string };
  /** pg_hba.conf in place of initdb's (trust for everyone). */
  hba?: string;
  /** listen_addresses (default 127.0.0.1). */
  listen?: string;
}

export async function startPrivatePostgres(o: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const bin = await binDir();
  const home = mkdtempSync(path.join(tmpdir(), 'mirrorstate-pg-'));
  const data = path.join(home, 'data');
  const owner = asRoot
    ? {
        uid: Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout),
        gid: Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout),
      }
    : undefined;
  // The server's own files: the server's user reads them, nobody else (PostgreSQL insists for a key).
  const serverFile = (file: string, content: string) => {
    writeFileSync(file, content, { mode: 0o600 });
    if (owner) chownSync(file, owner.uid, owner.gid);
  };
  if (owner) chownSync(home, owner.uid, owner.gid);
  const run = (binary: string, args: string[]) =>
    asRoot ? exec('runuser', ['-u', 'postgres', '--', path.join(bin, binary), ...args]) : exec(path.join(bin, binary), args);
  const port = await freePort();
  await run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  if (o.hba !== undefined) serverFile(path.join(data, 'pg_hba.conf'), o.hba);
  let options = `-p ${port} -c listen_addresses=${o.listen ?? '127.0.0.1'} -k ${home} -c fsync=off -c max_connections=60`;
  if (o.tls) {
    serverFile(path.join(home, 'server.crt'), o.tls.cert);
    serverFile(path.join(home, 'server.key'), o.tls.key);
    options += ` -c ssl=on -c ssl_cert_file=${path.join(home, 'server.crt')} -c ssl_key_file=${path.join(home, 'server.key')}`;
    if (o.tls.ca !== undefined) {
      serverFile(path.join(home, 'ca.crt'), o.tls.ca);
      options += ` -c ssl_ca_file=${path.join(home, 'ca.crt')}`;
    }
  }
  const start = async () => {
    await run('pg_ctl', ['-D', data, '-o', options, '-l', path.join(home, 'log'), '-w', '-t', '60', 'start']);
  };
  const stop = async () => {
    await run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  };
  await start();
  const url = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const socket = (database: string): pg.ClientConfig => ({ host: home, port, user: 'postgres', database });
  return {
    port,
    url,
    socket,
    async createDatabase(name) {
      const client = new pg.Client(socket('postgres'));
      await client.connect();
      try {
        await client.query(`create database ${name}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    stop,
    start,
    async destroy() {
      await stop().catch(() => undefined);
      rmSync(home, { recursive: true, force: true });
    },
  };
}
