import { describe, expect, it } from 'vitest';
import { formatAgo, formatBytes, formatCount, formatDuration, formatFor, formatUtc } from '../../src/http/page/format.js';
import { escapeHtml, html, htmlEach, trustedHtml } from '../../src/http/page/html.js';
import { listHref, mirrorApiHref, mirrorHref } from '../../src/http/page/links.js';

describe('html tag', () => {
  it.each([
    ['<script>alert(1)</script>', '&lt;script&gt;alert(1)&lt;/script&gt;'],
    ['" onmouseover="x', '&quot; onmouseover=&quot;x'],
    ["it's & done", 'it&#39;s &amp; done'],
    ['&amp;', '&amp;amp;'],
    ['plain ünïcode 🚀', 'plain ünïcode 🚀'],
  ])('escapes %j in text and attributes', (input, escaped) => {
    expect(escapeHtml(input)).toBe(escaped);
    expect(html`<td title="${input}">${input}</td>`.text).toBe(`<td title="${escaped}">${escaped}</td>`);
  });

  it('passes Html through, joins arrays, drops null, undefined and false', () => {
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`${inner}|${[html`<br>`, '<']}|${null}${undefined}${false}|${0}|${true}`.text)
      .toBe('<b>&lt;i&gt;</b>|<br>&lt;||0|true');
    expect(html`${trustedHtml('<style>a>b{}</style>')}`.text).toBe('<style>a>b{}</style>');
  });

  it('never trusts a string that merely looks like markup', () => {
    const sneaky = { text: '<script>', toString: () => '<script>' };
    expect(html`${sneaky as unknown as string}`.text).toBe('&lt;script&gt;');
  });
});

describe('htmlEach', () => {
  it('renders every item in order, escaped, and lets the event loop run between chunks', async () => {
    const items = Array.from({ length: 250 }, (_, i) => `<${i}>`);
    const seenByOthers: number[] = [];
    let rendered = 0;
    let done = false;
    const other = () => {
      seenByOthers.push(rendered);
      if (!done) setImmediate(other);
    };
    setImmediate(other);
    const out = await htmlEach(items, (item) => { rendered++; return html`${item},`; }, 100);
    done = true;
    expect(out.text).toBe(items.map((i) => `&lt;${i.slice(1, -1)}&gt;,`).join(''));
    // Another callback ran while the render was between its chunks, never inside one.
    expect(seenByOthers.filter((n) => n > 0 && n < 250)).toEqual([100, 200]);
    expect(seenByOthers.every((n) => n % 100 === 0 || n === 250)).toBe(true);
    expect((await htmlEach([], () => html`x`)).text).toBe('');
  });
});

describe('formatting', () => {
  it.each([
    [0, '0 s'], [0.25, '0.25 s'], [1.5, '1.5 s'], [9.94, '9.9 s'], [45, '45 s'], [60, '1 min'], [200, '3 min 20 s'],
    [3_600, '1 h'], [7_500, '2 h 5 min'], [86_400 * 4 + 3 * 3_600 + 59, '4 d 3 h'], [86_400 * 400, '400 d'],
  ])('duration %d s → %s', (seconds, text) => expect(formatDuration(seconds)).toBe(text));

  const NOW = Date.parse('2026-11-21T12:00:00Z');
  it.each([
    ['2026-11-21T12:00:00.000000Z', 'just now'],
    ['2026-11-21T11:59:15.123456Z', '44 s ago'],
    ['2026-11-21T09:55:00.000000Z', '2 h 5 min ago'],
    ['2026-11-21T12:00:03.000000Z', 'in 3 s'],
    ['not a time', 'not a time'],
  ])('%s is %s at 12:00', (iso, text) => expect(formatAgo(iso, NOW)).toBe(text));

  it.each([
    ['2026-11-21T11:59:15.123456Z', 'for 44 s'],
    ['2026-11-21T09:55:00.000000Z', 'for 2 h 5 min'],
    ['2026-11-21T12:00:00.000000Z', 'since just now'],
    ['2026-11-21T12:00:03.000000Z', 'since 2026-11-21 12:00:03 UTC'],
    ['not a time', 'since not a time'],
  ])('a state begun at %s has lasted %s at 12:00 (no "for … ago")', (iso, text) => expect(formatFor(iso, NOW)).toBe(text));

  it.each([
    [0, '0 B'], [1023, '1023 B'], [1536, '1.5 KiB'], [10 * 1024 * 1024, '10 MiB'], [39_007_354, '37.2 MiB'],
    [5.5 * 1024 ** 3, '5.5 GiB'], [120 * 1024 ** 3, '120 GiB'], [3 * 1024 ** 5, '3 PiB'],
  ])('bytes %d → %s', (bytes, text) => expect(formatBytes(bytes)).toBe(text));

  it.each([
    [0, '0'], [7, '7'], [999, '999'], [1000, '1,000'], [12_345, '12,345'], [999_999, '999,999'], [1_234_567, '1,234,567'],
    [Number.MAX_SAFE_INTEGER, '9,007,199,254,740,991'], [1.5, '2'], [-1234, '-1,234'], [2 ** 60, '1,152,921,504,606,847,000'],
  ])('count %d → %s, as Intl writes it', (n, text) => {
    expect(formatCount(n)).toBe(text);
    expect(formatCount(n)).toBe(new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 }).format(n));
  });

  it('UTC times', () => {
    expect(formatUtc('2026-11-21T10:00:00.123456Z')).toBe('2026-11-21 10:00:00 UTC');
  });
});

describe('links', () => {
  it.each([
    ['orders_cdc', 'mirrors/orders_cdc'],
    ['eu/orders "v2"', 'mirrors/eu%2Forders%20%22v2%22'],
    ['50% & more?#', 'mirrors/50%25%20%26%20more%3F%23'],
    ['back\\slash', 'mirrors/back%5Cslash'],
    ['.', 'mirrors/?name=.'],
    ['..', 'mirrors/?name=..'],
    ['...', 'mirrors/...'],
    ['%2e%2e', 'mirrors/%252e%252e'],
  ])('%j → %s, and a browser resolves it to that name', (name, href) => {
    expect(mirrorHref(name)).toBe(href);
    // What a browser does with the link on the front page: the request must still carry the name.
    const url = new URL(href, 'http://host/');
    const sent = url.pathname === '/mirrors/' ? url.searchParams.get('name') : decodeURIComponent(url.pathname.slice('/mirrors/'.length));
    expect(sent).toBe(name);
  });

  it('has no JSON link for names no path reaches', () => {
    expect(mirrorApiHref('..')).toBeUndefined();
    expect(mirrorApiHref('a/b')).toBe('../api/v1/mirrors/a%2Fb');
  });

  it('leaves defaults out of list links', () => {
    expect(listHref({})).toBe('./');
    expect(listHref({ limit: 100, dropped: false })).toBe('./');
    expect(listHref({ status: 'failed', dropped: true, limit: 10, after: 'a&b c' })).toBe('?status=failed&dropped=true&limit=10&after=a%26b+c');
  });
});
