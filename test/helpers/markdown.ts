/**
 * Just enough Markdown for the tests that keep README.md and docs/ in step with the code: the
 * headings' anchors as GitHub makes them, the relative links, and a section's text.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** README.md and every docs/*.md, as paths relative to the repository's root. */
export function markdownFiles(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort();
  return ['README.md', ...docs.map((f) => `docs/${f}`)];
}

export function readDoc(file: string): string {
  return readFileSync(path.join(ROOT, file), 'utf8');
}

/** The text outside fenced code blocks, so a `#` comment or a `[x](y)` in an example counts for nothing. */
export function prose(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every anchor a file's headings make, with GitHub's -1, -2 … for repeated ones. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const match of prose(text).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(match[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${n}`);
  }
  return result;
}

/** The targets of the file's Markdown links and images, code spans and code blocks left out. */
export function links(text: string): string[] {
  const withoutCode = prose(text).replace(/`[^`\n]*`/g, '');
  return [...withoutCode.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

/**
 * The text under the heading `title` (any level) up to the next heading of the same or a higher
 * level; throws when the file has no such heading, so a renamed section fails loudly.
 */
export function section(text: string, title: string): string {
  const lines = text.split('\n');
  let inFence = false;
  let start = -1;
  let level = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^(```|~~~)/.test(line)) inFence = !inFence;
    if (inFence) continue;
    const heading = /^(#{1,6})\s+(.+?)\s*$/.exec(line);
    if (!heading) continue;
    if (start >= 0 && heading[1]!.length <= level) return lines.slice(start, i).join('\n');
    if (start < 0 && heading[2] === title) {
      start = i;
      level = heading[1]!.length;
    }
  }
  if (start < 0) throw new Error(`no heading "${title}"`);
  return lines.slice(start).join('\n');
}

/** The names in backticks in the first column of the Markdown tables of `text`. */
export function firstColumnNames(text: string): string[] {
  return [...prose(text).matchAll(/^\|\s*`([^`]+)`/gm)].map((m) => m[1]!);
}
