import { describe, expect, it } from 'vitest';
import { DlqUsageError, parseDlqRequest, printable, safeJson, type DlqValues } from '../../src/cli/dlq.js';

const ID = '6f1c2a3b-0000-4000-8000-000000000001';

describe('parseDlqRequest', () => {
  it.each<[string[], DlqValues, object]>([
    [['list'], {}, { subcommand: 'list', limit: 100, json: false, bySelection: false }],
    [['list'], { json: true, limit: '5', 'older-than': '1h', reason: 'future' }, { limit: 5, json: true, filter: { olderThanMs: 3_600_000, reason: 'future' } }],
    [['show', ID], {}, { subcommand: 'show', ids: [ID] }],
    [['redrive', ID, ID.toUpperCase()], {}, { ids: [ID, ID.toUpperCase()], bySelection: false }],
    [['redrive'], { all: true }, { bySelection: true, filter: {} }],
    [['redrive'], { mirror: 'm' }, { bySelection: true, filter: { mirror: 'm' } }],
    [['purge'], { 'older-than': '7d' }, { bySelection: true, filter: { olderThanMs: 604_800_000 } }],
    [['purge'], { all: true, reason: 'x' }, { bySelection: true }],
  ])('%j %j', (args, values, expected) => {
    expect(parseDlqRequest(args, values)).toMatchObject(expected);
  });

  it.each<[string[], DlqValues, RegExp]>([
    [[], {}, /needs a subcommand/],
    [['peek'], {}, /unknown dlq subcommand "peek"/],
    [['show'], {}, /exactly one id/],
    [['show', 'abc'], {}, /"abc" is not a dead-letter id/],
    [['list', ID], {}, /takes no ids/],
    [['list'], { limit: '0' }, /--limit must be a positive integer/],
    [['list'], { 'older-than': 'a week' }, /--older-than must be a duration/],
    [['redrive'], {}, /needs ids, --all, or a filter/],
    [['redrive', ID], { all: true }, /not both/],
    [['redrive'], { all: true, limit: '5' }, /takes no --limit/],
    [['purge'], {}, /needs ids, --older-than DUR, or --all/],
    [['purge'], { reason: 'x' }, /needs --older-than DUR, or --all/],
  ])('refuses %j %j', (args, values, message) => {
    expect(() => parseDlqRequest(args, values)).toThrow(DlqUsageError);
    expect(() => parseDlqRequest(args, values)).toThrow(message);
  });
});

describe('output of hostile text', () => {
  it.each([
    ['plain', 'plain'],
    ['\u001b[31mred', '\\u001b[31mred'],
    ['a\nb', 'a\\u000ab'],
    ['\u202eevil', '\\u202eevil'],
    ['x'.repeat(50), `${'x'.repeat(39)}…`],
  ])('printable(%j)', (text, shown) => expect(printable(text, 40)).toBe(shown));
  it('safeJson escapes C1 controls and stays JSON', () => {
    const text = safeJson({ m: 'a\u009bb\u2028' });
    expect(text).toBe('{"m":"a\\u009bb\\u2028"}');
    expect(JSON.parse(text)).toEqual({ m: 'a\u009bb\u2028' });
  });
});
