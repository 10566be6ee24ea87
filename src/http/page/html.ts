/**
 * A tagged template for HTML that escapes every interpolation unless it is already `Html`:
 *
 *   html`<td title="${message}">${name}</td>`
 *
 * Mirror names, error messages and payloads are hostile input (a mirror may be named
 * `<script>…</script>` or `" onmouseover="…`), so escaping is the default and the only way around it
 * is to interpolate an `Html` value, which only this tag (and `trustedHtml`, for the page's own
 * constant CSS and the sparklines' escaped pieces) makes. Attribute values must be written in double quotes; all five of `& < > " '`
 * are escaped, so a value is safe in text and in a quoted attribute alike. URLs are built with
 * encodeURIComponent / URLSearchParams before they get here (see links.ts).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

function render(value: HtmlValue): string {
  if (value instanceof Html) return value.text;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let text = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) text += render(values[i]) + (strings[i + 1] ?? '');
  return new Html(text);
}

/** Items rendered between two yields to the event loop: about a millisecond of work per chunk. */
export const RENDER_CHUNK_ITEMS = 100;

/**
 * `items.map(render)` joined, yielding to the event loop every `chunk` items, so that a long page
 * (1,000 rows, or events with large payloads) never holds the loop for more than a chunk's time.
 */
export async function htmlEach<T>(items: readonly T[], render: (item: T) => Html, chunk = RENDER_CHUNK_ITEMS): Promise<Html> {
  let text = '';
  for (let i = 0; i < items.length; i++) {
    if (i > 0 && i % chunk === 0) await yieldToEventLoop();
    text += render(items[i] as T).text;
  }
  return new Html(text);
}

/**
 * Markup written by this program, never raw input: the page's stylesheet, and markup built in a hot
 * loop from this program's words and numbers and from input already escaped (the sparklines).
 */
export function trustedHtml(text: string): Html {
  return new Html(text);
}
