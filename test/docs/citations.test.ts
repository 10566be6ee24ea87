/**
 * Code comments cite the project's own reference: every `docs/<file>.md` named in src/, test/, bench/
 * and grafana/ exists, and a section named after it (`docs/metrics.md, Sharding` or
 * `docs/metrics.md (Sharding)`, `docs/metrics.md: Sharding`) is a heading of that file. Nothing cites the interface spec the
 * project was started from, which a clone of the repository does not have.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { markdownFiles, prose, readDoc, ROOT } from '../helpers/markdown.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return files(full);
    return /\.(ts|ya?ml|json|sql)$/.test(name) ? [full] : [];
  });
}

/** This folder's tests name docs files and the old spec in their own examples. */
const HERE = path.join(ROOT, 'test', 'docs');
const sources = ['src', 'test', 'bench', 'grafana']
  .flatMap((dir) => files(path.join(ROOT, dir)))
  .filter((file) => !file.startsWith(HERE))
  .map((file) => ({
    file: path.relative(ROOT, file),
    // Comments joined across lines, so a citation wrapped onto the next comment line still reads whole.
    text: readFileSync(file, 'utf8').replace(/\n\s*(?:\*(?!\/)|\/\/|#)\s*/g, ' '),
  }));

const headings = new Map(markdownFiles().map((file) => [
  file,
  [...prose(readDoc(file)).matchAll(/^#{1,6}\s+(.+?)\s*$/gm)].map((m) => m[1]!.replaceAll('`', '')),
]));

it('names only docs files that exist, and sections they have', () => {
  const broken: string[] = [];
  for (const { file, text } of sources) {
    for (const m of text.matchAll(/\b(docs\/[A-Za-z0-9_-]+\.md)(?:[,:] ([A-Z][^;:.,)\n]*)| \(([A-Z][^;:.,)\n]*)\))?/g)) {
      const cited = m[1]!;
      const own = headings.get(cited);
      if (own === undefined) {
        broken.push(`${file}: ${cited} does not exist`);
        continue;
      }
      const section = (m[2] ?? m[3])?.trim();
      if (section !== undefined && !own.some((h) => section === h || section.startsWith(`${h} `))) {
        broken.push(`${file}: ${cited} has no heading "${section}"`);
      }
    }
  }
  expect(broken).toEqual([]);
});

it('cites the project\'s own docs, never the spec it was started from', () => {
  // Spelled in pieces, so this file does not match itself.
  const spec = new RegExp(['CON', 'TRACT §|\\.\\./', 'shared'].join(''));
  const cites = sources.filter(({ text }) => spec.test(text)).map(({ file }) => `${file} cites ${spec.source}: cite docs/ instead`);
  expect(cites).toEqual([]);
});
