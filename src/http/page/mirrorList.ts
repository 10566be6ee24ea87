/**
 * The front page (`GET /`): mirrors per status, then one page of the mirror table. Rendering is a
 * function of one catalog snapshot (catalog/readMirrorPage.ts) and the time it was read, in chunks
 * of rows between which the event loop gets to run (htmlEach).
 */
import type { MirrorPage, MirrorPageQuery } from '../../catalog/readMirrorPage.js';
import type { MirrorState } from '../../catalog/views.js';
import { STATUSES } from '../../update.js';
import { formatBytes, formatCount, formatDuration } from './format.js';
import { type Html, html, htmlEach } from './html.js';
import { none, page, statusBadge, timeAgo } from './layout.js';
import { listHref, type ListParams, mirrorHref } from './links.js';
import { sparklineRenderer } from './sparkline.js';
import type { TimelineWindow } from '../../catalog/readTimelines.js';

interface Totals {
  live: Map<string, number>;
  liveTotal: number;
  dropped: number;
  /** Mirrors the current filter matches, dropped ones included when the filter includes them. */
  matching: number;
}

function totals(data: MirrorPage, query: MirrorPageQuery): Totals {
  const live = new Map<string, number>();
  let liveTotal = 0;
  let dropped = 0;
  let matching = 0;
  for (const { status, dropped: isDropped, count } of data.counts) {
    if (isDropped) dropped += count;
    else {
      live.set(status, (live.get(status) ?? 0) + count);
      liveTotal += count;
    }
    if ((query.dropped || !isDropped) && (!query.status || query.status === status)) matching += count;
  }
  return { live, liveTotal, dropped, matching };
}

function chips(t: Totals, query: MirrorPageQuery): Html {
  const base: ListParams = { dropped: query.dropped, limit: query.limit };
  const chip = (label: string, count: number, href: string, active: boolean, cls: string, status: string) => html`
<a class="chip ${cls}${count === 0 ? ' zero' : ''}${active ? ' active' : ''}" href="${href}" data-status="${status}"${active ? html` aria-current="page"` : ''}>
<span class="n" data-count="${count}">${formatCount(count)}</span><span class="label">${label}</span></a>`;
  return html`<nav class="chips" aria-label="mirrors per status">
${chip('all mirrors', t.liveTotal, listHref(base), !query.status, '', 'all')}
${STATUSES.map((s) => chip(s, t.live.get(s) ?? 0, listHref({ ...base, status: s }), query.status === s, `s-${s}`, s))}
${chip(query.dropped ? 'dropped (shown)' : 'dropped', t.dropped,
    listHref({ status: query.status, limit: query.limit, dropped: !query.dropped }), query.dropped === true, 's-dropped', 'dropped')}
</nav>`;
}

function pager(data: MirrorPage, query: MirrorPageQuery): Html {
  const base: ListParams = { status: query.status, dropped: query.dropped, limit: query.limit };
  const first = data.mirrors[0]?.mirror;
  const last = data.mirrors[data.mirrors.length - 1]?.mirror;
  const previous = data.hasPrevious && first !== undefined
    ? html`<a href="${listHref({ ...base, before: first })}" rel="prev">← previous</a>` : html`<span>← previous</span>`;
  const next = data.hasNext && last !== undefined
    ? html`<a href="${listHref({ ...base, after: last })}" rel="next">next →</a>` : html`<span>next →</span>`;
  const firstPage = query.after !== undefined || query.before !== undefined
    ? html`<a href="${listHref(base)}">first</a>` : html`<span>first</span>`;
  return html`<div class="pager">${firstPage}${previous}${next}</div>`;
}

function loadCell(p: { partitionsSynced: number; partitions: number } | undefined): Html {
  if (p === undefined) return none();
  return html`<progress max="${p.partitions}" value="${Math.min(p.partitionsSynced, p.partitions)}"></progress>
<span class="load">${formatCount(p.partitionsSynced)} of ${formatCount(p.partitions)}</span>`;
}

function row(m: MirrorState, nowMs: number, spark: Html | undefined, progress: MirrorPage['progress']): Html {
  const peers = m.source || m.destination ? `${m.source ?? '?'} → ${m.destination ?? '?'}` : '';
  const sub = [m.flowType, peers].filter(Boolean).join(' · ');
  const slotLag = m.slotLagBytes;
  return html`<tr data-mirror="${m.mirror}" data-status="${m.status}">
<td class="name"><a href="${mirrorHref(m.mirror)}"><bdi>${m.mirror}</bdi></a>${sub ? html`<div class="sub"><bdi>${sub}</bdi></div>` : ''}</td>
<td>${statusBadge(m.status)}${m.dropped ? html` <span class="badge s-dropped" title="dropped ${m.droppedAt}">dropped</span>` : ''}</td>
${spark === undefined ? '' : html`<td>${spark}</td>`}
<td>${timeAgo(m.statusSince, nowMs)}</td>
<td>${timeAgo(m.observedAt, nowMs)}</td>
<td class="load">${loadCell(progress.get(m.mirror))}</td>
<td class="num">${m.rowsSynced === null ? none() : formatCount(m.rowsSynced)}</td>
<td class="num">${m.lagSeconds === null ? none() : formatDuration(m.lagSeconds)}</td>
<td class="num">${slotLag === null ? none() : html`<span title="${formatCount(slotLag)} bytes">${formatBytes(slotLag)}</span>`}</td>
<td>${m.error ? html`<span class="err" title="${m.error.message}">${m.error.class}</span>` : none()}</td>
</tr>`;
}

export async function renderMirrorList(data: MirrorPage, query: MirrorPageQuery, nowMs: number, sparkWindow?: TimelineWindow): Promise<Html> {
  const t = totals(data, query);
  const sparklines = data.sparklines && sparkWindow ? sparklineRenderer(sparkWindow) : undefined;
  const what = `${query.status ? `${query.status} ` : ''}mirror${t.matching === 1 ? '' : 's'}${query.dropped ? ', dropped ones included' : ''}`;
  const range = data.mirrors.length === t.matching
    ? html`${formatCount(t.matching)} ${what}`
    : html`${formatCount(data.mirrors.length)} of ${formatCount(t.matching)} ${what}, by name`;
  const table = data.mirrors.length === 0
    ? html`<div class="empty">${t.liveTotal + t.dropped === 0
      ? html`No mirrors yet. Publish an update, e.g. <code>mirrorstate publish --mirror orders_cdc --status running</code>.`
      : 'No mirrors on this page.'}</div>`
    : html`<table class="mirrors"><thead><tr><th>Mirror</th><th>Status</th>${data.sparklines && sparkWindow ? html`<th data-from="${sparkWindow.from}" data-to="${sparkWindow.to}">Last 24 h</th>` : ''}<th>Since</th><th>Last update</th>
<th>Initial load</th><th class="num">Rows synced</th><th class="num">Lag</th><th class="num">Slot lag</th><th>Error</th></tr></thead>
<tbody>${await htmlEach(data.mirrors, (m) => row(m, nowMs, sparklines?.(data.sparklines?.get(m.mirror)), data.progress))}</tbody></table>`;
  const body = html`${chips(t, query)}
<div class="bar"><span class="range">${range}</span>${pager(data, query)}</div>
<div class="card">${table}</div>
${data.mirrors.length > 20 ? html`<div class="bar bottom">${pager(data, query)}</div>` : ''}`;
  return page({ title: query.status ? `${query.status} mirrors · mirrorstate` : 'mirrorstate', root: './', nowMs, body });
}
