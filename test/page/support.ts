/** Reading the status page's HTML in tests: the attributes and headings it marks its data with. */

/** Mirror names that are markup, quotes, dot segments, percent signs, bidi overrides. */
export const HOSTILE = [
  '<script>alert(1)</script>',
  `<img src=x onerror="document.title='pwned'">`,
  `<script>document.title='pwned'</script>`,
  '</td></tr></table><h1>injected</h1>',
  'quote"s & \'apostrophes\'',
  'slash/name', '../etc', '.', '..', '...', '%2e%2e', 'percent%20sign', 'with space', 'emoji 🚀 ünïcode',
  '?query#hash&amp', 'back\\slash', '\u202Eright-to-left',
];

export function unescapeHtml(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
}

export interface ListedRow {
  mirror: string;
  status: string;
  href: string;
}

/** The mirror table's rows, in page order. */
export function listedRows(page: string): ListedRow[] {
  return [...page.matchAll(/<tr data-mirror="([^"]*)" data-status="([^"]*)">\s*<td class="name"><a href="([^"]*)">/g)]
    .map(([, mirror, status, href]) => ({ mirror: unescapeHtml(mirror ?? ''), status: status ?? '', href: unescapeHtml(href ?? '') }));
}

/** The count chips: status (or `all`, `dropped`) → count. */
export function chipCounts(page: string): Record<string, number> {
  return Object.fromEntries([...page.matchAll(/data-status="([^"]+)"[^>]*>\s*<span class="n" data-count="(\d+)"/g)]
    .map(([, status, count]) => [status, Number(count)]));
}

/** The pager link with this rel (`next`, `prev`), or undefined when the pager shows none. */
export function pagerHref(page: string, rel: 'next' | 'prev'): string | undefined {
  const match = new RegExp(`<a href="([^"]*)" rel="${rel}">`).exec(page);
  return match ? unescapeHtml(match[1] ?? '') : undefined;
}

/** A mirror page's heading: the name as the page shows it. */
export function headingName(page: string): string | undefined {
  const match = /<bdi class="mirror-name">([^<]*)<\/bdi>/.exec(page);
  return match ? unescapeHtml(match[1] ?? '') : undefined;
}

/** A mirror page's two tables: rows shown, and the totals their headings state. */
export function detailCounts(page: string) {
  const number = (s: string | undefined) => Number((s ?? '').replaceAll(',', ''));
  const t = /Transitions <small>newest ([\d,]+) of ([\d,]+)<\/small>/.exec(page);
  const j = /Journal <small>newest ([\d,]+) of ([\d,]+) retained<\/small>/.exec(page);
  return {
    transitionRows: (page.match(/<tr data-transition=/g) ?? []).length,
    transitionsShown: number(t?.[1]),
    transitionsTotal: number(t?.[2]),
    eventRows: (page.match(/<tr data-event=/g) ?? []).length,
    eventsShown: number(j?.[1]),
    journalLength: number(j?.[2]),
  };
}
