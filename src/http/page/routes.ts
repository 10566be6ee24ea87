/**
 * The status page for people (docs/http.md): `GET /` and `GET /mirrors/{mirror}`, server-rendered
 * HTML that needs no JavaScript and loads nothing else. Each answer is one catalog snapshot
 * (catalog/readMirrorPage.ts, catalog/readMirror.ts), rendered in chunks of rows with the event loop
 * free between them (html.ts, htmlEach), so even the largest page never holds the loop for long
 * (`npm run bench page` measures it).
 *
 * Query parameters (bad ones answer 400 naming the parameter):
 *   /                 ?status=running  ?dropped=true  ?limit=1–500 (100)  ?after=NAME | ?before=NAME
 *   /mirrors/{mirror} ?events=0–200 (20)  ?transitions=0–1000 (50)  ?window=24h|7d|30d|90d (7d, the timeline's)
 *   /mirrors/?name=NAME  the same page by query, for the names `.` and `..` (see links.ts)
 */
import type { ServerResponse } from 'node:http';
import type { Pool } from '../../db/pool.js';
import type { Logger } from '../../log.js';
import { readMirror } from '../../catalog/readMirror.js';
import { DEFAULT_PAGE_MIRRORS, MAX_PAGE_MIRRORS, readMirrorPage } from '../../catalog/readMirrorPage.js';
import { SparklineCache } from '../../catalog/sparklineCache.js';
import { parseStatus, STATUSES } from '../../update.js';
import { BadParameter, booleanParam, integerParam, mirrorParam, textValue } from '../api.js';
import type { HttpServer } from '../server.js';
import { type Html, html } from './html.js';
import { notice, renderMirrorDetail, renderUnknownMirror } from './mirrorDetail.js';
import { renderMirrorList } from './mirrorList.js';
import { SPARKLINE_WIDTH, SPARKLINE_WINDOW_SECONDS } from './sparkline.js';
import { DEFAULT_TIMELINE_WINDOW, TIMELINE_WIDTH, TIMELINE_WINDOWS, type TimelineWindowName, timelineWindow } from './timeline.js';

export const DEFAULT_PAGE_EVENTS = 20;
/** Below the API's 1000: each event shows its whole payload, and payloads may be large. */
export const MAX_PAGE_EVENTS = 200;
export const DEFAULT_PAGE_TRANSITIONS = 50;
export const MAX_PAGE_TRANSITIONS = 1000;

/**
 * The page loads nothing, so it may forbid everything but its own inline stylesheet: even a markup
 * injection that escaping missed could then run no script and load no image.
 */
const CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface StatusPageOptions {
  pool: Pool;
  schema: string;
  logger: Logger;
  /** Fleet-page sparkline reads kept between views (catalog/sparklineCache.ts); 0 reads them every time. */
  sparklineCacheMirrors?: number;
}

function sendHtml(res: ServerResponse, status: number, page: Html): void {
  // Encoded once: the length and the bytes sent from one pass over the text (the largest page's
  // size: docs/performance.md, "Timelines and sparklines"), where Buffer.byteLength and a string
  // write would each make one.
  const body = Buffer.from(page.text);
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-store',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(body);
}

function textParam(url: URL, name: string): string | undefined {
  const value = url.searchParams.get(name);
  return value === null ? undefined : textValue(name, value);
}

function windowParam(url: URL): TimelineWindowName {
  const raw = url.searchParams.get('window');
  if (raw === null || raw === '') return DEFAULT_TIMELINE_WINDOW;
  if (Object.hasOwn(TIMELINE_WINDOWS, raw)) return raw as TimelineWindowName;
  throw new BadParameter('window', `window must be one of ${Object.keys(TIMELINE_WINDOWS).join(', ')}, got ${JSON.stringify(raw)}`);
}

export function registerStatusPage(server: HttpServer, { pool, schema, logger, sparklineCacheMirrors }: StatusPageOptions): void {
  const log = logger.child({ component: 'status-page' });
  // The fleet page's sparkline reads, kept while the mirrors' transitions_total stays the same.
  const sparklineCache = sparklineCacheMirrors === 0 ? undefined : new SparklineCache(sparklineCacheMirrors);

  /** Runs one page's read and render; bad parameters and catalog failures become pages too. */
  const answer = async (res: ServerResponse, root: string, work: (nowMs: number) => Promise<[number, Html]>) => {
    const nowMs = Date.now();
    try {
      const [status, body] = await work(nowMs);
      sendHtml(res, status, body);
    } catch (err) {
      if (err instanceof BadParameter) {
        sendHtml(res, 400, notice(`Bad parameter: ${err.parameter}`, html`<p>${err.message}</p>`, nowMs, root));
        return;
      }
      log.error({ err }, 'status page could not read the catalog');
      sendHtml(res, 503, notice('Catalog unavailable', html`<p>The catalog could not be read just now. The daemon log says
why; <a href="${root}readyz">/readyz</a> says whether the daemon is ready.</p>`, nowMs, root));
    }
  };

  server.route('GET', /^\/$/, (_req, res, _params, url) => answer(res, './', async (nowMs) => {
    const rawStatus = textParam(url, 'status');
    // Any spelling the update message accepts: the name, upper case, STATUS_ prefixed, or the code.
    const status = rawStatus === undefined || rawStatus === '' ? undefined : parseStatus(/^\d+$/.test(rawStatus) ? Number(rawStatus) : rawStatus);
    if (rawStatus && status === undefined) {
      throw new BadParameter('status', `status must be one of ${STATUSES.join(', ')} (or in upper case, STATUS_ prefixed, or its code 0–${STATUSES.length - 1}), got ${JSON.stringify(rawStatus)}`);
    }
    const after = textParam(url, 'after');
    const before = textParam(url, 'before');
    if (after !== undefined && before !== undefined) throw new BadParameter('before', 'give after or before, not both');
    const query = {
      status,
      dropped: booleanParam(url, 'dropped'),
      after,
      before,
      limit: integerParam(url, 'limit', 1, MAX_PAGE_MIRRORS, DEFAULT_PAGE_MIRRORS) as number,
    };
    const sparklines = timelineWindow(nowMs, SPARKLINE_WINDOW_SECONDS, SPARKLINE_WIDTH);
    const data = await readMirrorPage(pool, schema, query, sparklines, sparklineCache);
    return [200, await renderMirrorList(data, query, nowMs, sparklines)];
  }));

  const mirrorPage = (res: ServerResponse, url: URL, name: () => string) => answer(res, '../', async (nowMs) => {
    const mirror = name();
    const events = integerParam(url, 'events', 0, MAX_PAGE_EVENTS, DEFAULT_PAGE_EVENTS) as number;
    const transitions = integerParam(url, 'transitions', 0, MAX_PAGE_TRANSITIONS, DEFAULT_PAGE_TRANSITIONS) as number;
    const window = windowParam(url);
    const timeline = timelineWindow(nowMs, TIMELINE_WINDOWS[window], TIMELINE_WIDTH);
    const detail = await readMirror(pool, schema, mirror, { events, transitions, timeline });
    return detail ? [200, await renderMirrorDetail(detail, nowMs, { name: window, window: timeline, url })] : [404, renderUnknownMirror(mirror, nowMs)];
  });

  server.route('GET', /^\/mirrors\/([^/]+)$/, (_req, res, params, url) => mirrorPage(res, url, () => mirrorParam(params[0])));

  server.route('GET', /^\/mirrors\/?$/, (_req, res, _params, url) => {
    const name = url.searchParams.get('name');
    if (name !== null) return mirrorPage(res, url, () => textValue('name', name));
    res.writeHead(303, { location: '../' });
    res.end();
  });
}
