#!/usr/bin/env node
// `npx mirrorstate …` in a checkout. A fresh clone has no dist/ yet: the first call builds it (as
// `npm start` would) instead of failing, since npx remembers a command it could not link and keeps
// failing after a later build. Then the command line itself runs (docs/cli.md).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

const cli = new URL('../dist/cli/index.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('mirrorstate: building dist/ first (npm run build)\n');
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: new URL('..', import.meta.url), stdio: ['ignore', 2, 2] });
  if (build.status !== 0) {
    process.stderr.write('mirrorstate: the build failed (its output is above); fix it and run `npm run build`\n');
    process.exit(1);
  }
}
await import(cli.href);
