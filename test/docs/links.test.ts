/**
 * Every relative link in README.md and docs/*.md points at a file that exists and, when it names an
 * anchor, at a heading that makes it: a section renamed or moved breaks this test, not the reader.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { anchors, links, markdownFiles, readDoc, ROOT, slug } from '../helpers/markdown.js';

/** Broken links of one file, as `file: target (why)`. */
function brokenLinks(file: string, text: string, read: (file: string) => string | undefined): string[] {
  const broken: string[] = [];
  for (const target of links(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
    const [pathPart = '', anchor] = target.split('#', 2);
    const resolved = pathPart === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), pathPart));
    const targetText = read(resolved);
    if (targetText === undefined) {
      broken.push(`${file}: ${target} (no file ${resolved})`);
      continue;
    }
    if (anchor !== undefined && resolved.endsWith('.md') && !anchors(targetText).has(anchor)) {
      broken.push(`${file}: ${target} (no heading in ${resolved} makes #${anchor})`);
    }
  }
  return broken;
}

function readFromDisk(file: string): string | undefined {
  if (!existsSync(path.join(ROOT, file))) return undefined;
  return file.endsWith('.md') ? readDoc(file) : '';
}

describe('links in README.md and docs/', () => {
  it('all resolve to an existing file and heading', () => {
    const broken = markdownFiles().flatMap((file) => brokenLinks(file, readDoc(file), readFromDisk));
    expect(broken).toEqual([]);
  });

  it('would catch a missing file and a missing anchor', () => {
    const files: Record<string, string> = { 'docs/a.md': '# A\n\n## Two words\n' };
    const read = (f: string) => files[f];
    const text = '[ok](a.md#two-words) [file](b.md) [anchor](a.md#three) [here](#a) `[code](c.md)`\n```\n[x](d.md)\n```\n';
    expect(brokenLinks('docs/a.md', text, read)).toEqual([
      'docs/a.md: b.md (no file docs/b.md)',
      'docs/a.md: a.md#three (no heading in docs/a.md makes #three)',
    ]);
  });

  it('make anchors as GitHub does', () => {
    expect(slug('Ingest (`POST /api/v1/updates`)')).toBe('ingest-post-apiv1updates');
    expect(slug("The daemon's own families")).toBe('the-daemons-own-families');
    expect([...anchors('# X\n## Same\n## Same\n')]).toEqual(['x', 'same', 'same-1']);
  });
});
