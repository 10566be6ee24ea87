/**
 * Measured figures live in docs/performance.md, not in the comments of src/: a comment says why a
 * choice was made and names the section that holds its numbers (`docs/performance.md, "Write path:
 * figures behind choices"`). A timing or a size measured on one machine on one day reads as a fact
 * in code nobody re-measures; the document says where and when each was taken. Figures of the
 * design stay in the code: limits, defaults, intervals, protocol sizes ("a heartbeat of 10 s",
 * "over 1 MiB", "16 KB by default").
 *
 * The rule, on every comment of every .ts file under src/ (found by TypeScript's parser, so
 * strings and templates never count; a run of `//` lines is one comment). A quantity is a number
 * with a unit of time (ns, µs, ms, s, min, h), of size (B, KB, KiB, MB, … bytes) or a percent, a
 * rate (`25k updates/s`), or a ratio written on its number (`2.5×`). A comment quotes a measurement
 * when a quantity is
 *   - approximate: after `~`, `≈`, about, around, roughly, nearly, almost (a design value is exact);
 *   - a range, `0.4-0.6 s`, `1–5 ms` (a design value is one value; a bound derived from settings
 *     is written as those settings: "once its heartbeat is 10 s old, within one pass");
 *   - compared: `32 against 24 ms`, `1.0 s → 0.3 s`, `2.5 times faster`;
 *   - what something took: within three words after took, cost(s), spent, measured, went, fell,
 *     rose, grew, dropped, saved ("cost PostgreSQL 170 ms"); the present "takes" states limits
 *     ("takes 30 s in all") and does not count;
 *   - at a scale: `150 MB at 10,000 mirrors`;
 *   - in a sentence that says it was measured (measured, this machine, profiled, bench).
 * The reason in words passes ("several times more", "the larger part of it"), and so does a design
 * figure written plainly ("every 15 s", "doubling from 250 ms to 5 s", "at most 8 scrapes").
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/markdown.js';

const SRC = path.join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

interface Comment {
  line: number;
  /** The comment's words, its lines joined, without the comment markers. */
  text: string;
}

/** Every comment of a TypeScript source, consecutive `//` lines joined into one. */
function comments(source: string): Comment[] {
  const file = ts.createSourceFile('source.ts', source, ts.ScriptTarget.Latest, true);
  const ranges = new Map<number, ts.CommentRange>();
  const visit = (node: ts.Node): void => {
    for (const range of [...ts.getLeadingCommentRanges(source, node.getFullStart()) ?? [], ...ts.getTrailingCommentRanges(source, node.getEnd()) ?? []]) {
      ranges.set(range.pos, range);
    }
    node.getChildren(file).forEach(visit);
  };
  visit(file);
  const found: { pos: number; end: number; single: boolean }[] = [];
  for (const range of [...ranges.values()].sort((a, b) => a.pos - b.pos)) {
    const single = range.kind === ts.SyntaxKind.SingleLineCommentTrivia;
    const last = found.at(-1);
    if (single && last?.single && /^[ \t]*\n[ \t]*$/.test(source.slice(last.end, range.pos))) last.end = range.end;
    else found.push({ pos: range.pos, end: range.end, single });
  }
  return found.map(({ pos, end }) => ({
    line: file.getLineAndCharacterOfPosition(pos).line + 1,
    text: source.slice(pos, end).replace(/^\/\*\*?|\*\/$/g, '').split('\n')
      .map((line) => line.replace(/^\s*(?:\/\/|\*(?!\/))?\s*/, '')).join(' ').trim(),
  }));
}

const NUM = String.raw`\d[\d,]*(?:\.\d+)?`;
const UNIT = String.raw`(?:ns|µs|us|ms|s|sec|seconds?|min|minutes?|h|hours?|B|bytes?|[kKMGT]i?B|%)(?![\w%])`;
const QUANTITY = String.raw`(?:${NUM} ?${UNIT}|${NUM}k? ?[a-z]*\/s(?!\w)|${NUM}[×x](?!\w))`;
const RANGE = String.raw`${NUM}(?: ?${UNIT})? ?[-–—] ?${QUANTITY}`;

const MEASUREMENTS: [string, RegExp][] = [
  ['approximate', new RegExp(String.raw`(?:[~≈] ?|\b(?:about|around|roughly|nearly|almost|approximately) )(?:${RANGE}|${QUANTITY})`, 'u')],
  ['range', new RegExp(RANGE, 'u')],
  ['compared', new RegExp([
    String.raw`${NUM}(?: ?${UNIT})? (?:against|vs\.?|versus|→|->) [~≈]?${QUANTITY}`,
    String.raw`${QUANTITY} (?:against|vs\.?|versus|→|->) [~≈]?${NUM}`,
    String.raw`${NUM} ?(?:×|x|times) (?:faster|slower|cheaper|dearer|quicker|longer|shorter|smaller|larger|bigger|more|less|fewer)\b`,
  ].join('|'), 'u')],
  ['what it took', new RegExp(String.raw`\b(?:took|cost|costs|spent|spends|measured|went|fell|rose|grew|dropped|saved|saves)\b(?: [^\s\d~≈]+){0,3} [~≈]?${QUANTITY}`, 'u')],
  ['at a scale', new RegExp(String.raw`${QUANTITY}(?: \S+){0,2} at ${NUM}`, 'u')],
];
const MEASURED_SENTENCE = /\b(?:measured|measures|measuring|this machine|profiled?|bench(?:mark)?)\b/;
const QUANTITY_ANYWHERE = new RegExp(QUANTITY, 'u');

/** The measured figures a comment's text quotes, each as `kind: the words`; empty for none. */
function measuredFigures(text: string): string[] {
  const found = MEASUREMENTS.flatMap(([kind, pattern]) => {
    const match = pattern.exec(text);
    return match ? [`${kind}: ${match[0]}`] : [];
  });
  for (const sentence of text.split(/(?<=[.;!?])\s+/)) {
    const quantity = QUANTITY_ANYWHERE.exec(sentence);
    if (quantity && MEASURED_SENTENCE.test(sentence)) found.push(`said to be measured: ${quantity[0]}`);
  }
  return found;
}

describe('measured figures in comments of src/', () => {
  it('are found as they were once written there, each by the clause meant for it', () => {
    const written: [string, string][] = [
      ['approximate', 'most of a rebuilt bucket\'s text (the 12-line status family alone is ~75% of it)'],
      ['range', 'rebuilds its mirror, not 100,000 tables (0.4-0.6 s, in that change\'s latency). Pure.'],
      ['compared', 'only they pay for `on conflict` (a speculative insertion: 32 against 24 ms for 5,000 journal rows)'],
      ['what it took', 'Read as one jsonb document, a batch carrying tables (3.4 MB for 500 PeerDB updates of 25 tables) cost PostgreSQL 170 ms; apart, 50 ms.'],
      ['at a scale', 'so a 200-byte piece kept in the cache would hold 16 KB: 150 MB at 10,000 mirrors.'],
      ['said to be measured', 'so no column is deformed (measured at 10,000 rows: 1.2 ms, against widening every xmin).'],
    ];
    for (const [kind, comment] of written) {
      expect(measuredFigures(comment).map((f) => f.split(':')[0]), comment).toEqual([kind]);
    }
    expect(measuredFigures('planned and run empty they cost ~1 ms a statement')).not.toEqual([]);
    expect(measuredFigures('node-pg encodes it element by element (about 9 µs per jsonb payload)')).not.toEqual([]);
    expect(measuredFigures('sync calls are 2.5 times faster here')).not.toEqual([]);
    expect(measuredFigures('a batch carrying tables cost PostgreSQL 3 times more')).not.toEqual([]);
    expect(measuredFigures('measured: 25k updates/s against 20k in one batch')).not.toEqual([]);
    expect(measuredFigures('about 2.5× a DELETE\'s cost')).not.toEqual([]);
  });

  it('leave the figures of the design alone', () => {
    const design = [
      'with a queue heartbeat of 10 s (pg-boss\'s minimum) a live worker refreshes its claim every 3 s',
      '413 Content-Length over 1 MiB → read the body (408 when it stalls for 10 s or takes 30 s in all)',
      'until the backoff (doubling from 250 ms to 5 s) has passed; then one read tries again',
      'zlib\'s sync call returns a view of its output chunk (16 KB by default)',
      'one written continuously is shown at most two gaps behind (7.5 s at a 15 s scrape interval)',
      'The pass is a few indexed updates on the job table, so 2 s costs little.',
      'ANALYZEs the ones changed by more than autovacuum\'s own threshold (50 rows + 10%, but at',
      '`30s`, `15m`, `12h`, `7d`, `250ms`; a bare number is seconds',
      'When slotLagBytes was measured: a sampled figure can be old, and this says how old.',
      'a batch holds at most about UPDATES_PER_CLAIM_FACTOR × BATCH_SIZE updates (20,000 by default)',
      'read as one jsonb document, a batch carrying tables cost PostgreSQL several times more',
    ];
    expect(design.filter((text) => measuredFigures(text).length > 0)).toEqual([]);
  });

  it('are looked for in every comment, and only in comments', () => {
    const found = comments([
      'const sql = `select 1 -- took 170 ms ${x} /* ~5 ms */`;',
      '// a run of line comments',
      '// read as one: 0.4-0.6',
      '// s',
      'const url = "http://example/~1 ms"; /** last */',
    ].join('\n'));
    expect(found).toEqual([
      { line: 2, text: 'a run of line comments read as one: 0.4-0.6 s' },
      { line: 5, text: 'last' },
    ]);
    expect(measuredFigures(found[0]!.text)).toEqual(['range: 0.4-0.6 s']);
    const applyBatch = comments(readFileSync(path.join(SRC, 'catalog', 'applyBatch.ts'), 'utf8'));
    // A comment after the file's SQL templates, where a plain token scan loses its place.
    expect(applyBatch.some(({ text }) => text.includes('leaves the table steps out of the statement'))).toBe(true);
  });

  it('are not in any comment of src/', () => {
    const quoted = sourceFiles(SRC).flatMap((file) => comments(readFileSync(file, 'utf8')).flatMap(({ line, text }) =>
      measuredFigures(text).map((figure) => `${path.relative(ROOT, file)}, the comment from line ${line}: ${figure} (move it to docs/performance.md and name its section)`)));
    expect(quoted).toEqual([]);
  });
});
