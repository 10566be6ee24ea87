/**
 * The import graph of src/ has no circles. A circle makes a module's exports undefined while the
 * circle is still loading (which one depends on who is imported first) and ties the modules in it
 * into one unit a reader cannot take in one at a time. Type-only imports count too: they are the
 * same dependency for a reader, and a circle of them turns into a real one with the next value
 * import.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Each file of `root` and the files of `root` it imports (relative specifiers, `.js` meaning `.ts`). */
function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(root)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = importedFiles
      .map((i) => i.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => relative(root, resolve(dirname(file), spec.replace(/\.js$/, '.ts'))));
    graph.set(relative(root, file), [...new Set(targets)]);
  }
  return graph;
}

/** Every circle, each once, as the files along it with the first repeated at the end. */
function circles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const seen = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') {
        const circle = path.slice(path.indexOf(next));
        const key = [...circle].sort().join(' ');
        if (!seen.has(key)) {
          seen.add(key);
          found.push([...circle, next]);
        }
      } else if (!state.has(next)) {
        visit(next);
      }
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return found;
}

describe('the import graph of src/', () => {
  it('is read from the sources: every file is in it, with the imports it names', () => {
    const graph = importGraph(SRC);
    expect(graph.get('main.ts')).toContain('config.ts');
    expect(graph.get('catalog/applyBatch.ts')).toContain('update.ts');
    expect(graph.size).toBe(sourceFiles(SRC).length);
  });

  it('finds a circle, type-only imports included, when there is one', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts', 'd.ts']],
      ['d.ts', []],
    ]);
    expect(circles(graph)).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  });

  it('stays inside src/: nothing shipped imports test or bench code', () => {
    const outside = [...importGraph(SRC)].flatMap(([file, targets]) =>
      targets.filter((target) => target.startsWith('..')).map((target) => `${file} -> ${target}`));
    expect(outside).toEqual([]);
  });

  it('has no circles', () => {
    expect(circles(importGraph(SRC)).map((circle) => circle.join(' -> '))).toEqual([]);
  });

  it('has the command line on top: nothing imports cli/, and only cli/ imports the daemon (main.ts)', () => {
    const graph = importGraph(SRC);
    const importers = (target: (file: string) => boolean) =>
      [...graph].filter(([file, targets]) => !file.startsWith('cli/') && targets.some(target)).map(([file]) => file);
    expect(importers((t) => t.startsWith('cli/'))).toEqual([]);
    expect(importers((t) => t === 'main.ts')).toEqual([]);
    expect(graph.get('cli/run.ts')).toContain('main.ts');
  });
});
