/**
 * Links between the status pages. They are relative (`mirrors/…`, `../`), so the pages work behind
 * a reverse proxy that serves them under a path prefix.
 *
 * A mirror's page is `/mirrors/{encodeURIComponent(name)}`: `/` in a name becomes %2F, `%` %25, `?`
 * %3F, `#` %23, so every name is one path segment. Except two: browsers (and `new URL`) resolve a
 * segment that is `.` or `..` — even spelt `%2E%2E` — before they send the request, so no path can
 * reach mirrors named `.` or `..` from a browser. Those two link to `/mirrors/?name=…` instead, which
 * serves the same page (and so does any other name there).
 */
import { DEFAULT_PAGE_MIRRORS } from '../../catalog/readMirrorPage.js';
import type { Status } from '../../update.js';

function isDotSegment(name: string): boolean {
  return name === '.' || name === '..';
}

/** From the front page (`/`) to a mirror's page. */
export function mirrorHref(name: string): string {
  const encoded = encodeURIComponent(name);
  return isDotSegment(name) ? `mirrors/?name=${encoded}` : `mirrors/${encoded}`;
}

/** From a mirror's page to its JSON, or undefined for the names no path reaches from a browser. */
export function mirrorApiHref(name: string): string | undefined {
  return isDotSegment(name) ? undefined : `../api/v1/mirrors/${encodeURIComponent(name)}`;
}

export interface ListParams {
  status?: Status;
  dropped?: boolean;
  after?: string;
  before?: string;
  limit?: number;
}

/** The front page with these parameters; the default ones are left out of the URL. */
export function listHref(params: ListParams): string {
  const query = new URLSearchParams();
  if (params.status) query.set('status', params.status);
  if (params.dropped) query.set('dropped', 'true');
  if (params.limit !== undefined && params.limit !== DEFAULT_PAGE_MIRRORS) query.set('limit', String(params.limit));
  if (params.after !== undefined) query.set('after', params.after);
  if (params.before !== undefined) query.set('before', params.before);
  const text = query.toString();
  return text ? `?${text}` : './';
}
