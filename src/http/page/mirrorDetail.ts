/**
 * A mirror's page (`GET /mirrors/{mirror}`): its current state, its tables, its newest transitions
 * and its newest journal events, rendered from one readMirror snapshot, so the counts in the headings
 * describe the rows below them.
 */
import type { JournalEvent, MirrorDetail, MirrorState, TransitionView } from '../../catalog/views.js';
import type { TableView } from '../../catalog/tableFields.js';
import { formatBytes, formatCount, formatDuration, formatUtc } from './format.js';
import { type Html, html, htmlEach, type HtmlValue } from './html.js';
import { none, orNone, page, statusBadge, timeAgo, timeFor } from './layout.js';
import { mirrorApiHref } from './links.js';
import { renderTimeline, TIMELINE_WINDOWS, type TimelineWindowName, timelineSegments } from './timeline.js';
import type { TimelineWindow } from '../../catalog/readTimelines.js';

export interface TimelineChoice {
  name: TimelineWindowName;
  window: TimelineWindow;
  /** The page's own URL: the window links keep its other parameters. */
  url: URL;
}

/** Links to the same page with each window; relative (`?…`), so they work under any path prefix. */
function windowLinks(choice: TimelineChoice): Html {
  const links = (Object.keys(TIMELINE_WINDOWS) as TimelineWindowName[]).map((name) => {
    if (name === choice.name) return html`<span aria-current="true">${name}</span>`;
    const query = new URLSearchParams(choice.url.searchParams);
    query.set('window', name);
    return html`<a href="?${query.toString()}" data-window="${name}">${name}</a>`;
  });
  return html`<strong>Status over the last ${choice.name}</strong><nav class="windows" aria-label="timeline window">${links}</nav>`;
}

function at(iso: string | null, nowMs: number): Html {
  if (iso === null) return none();
  return html`<time datetime="${iso}" title="${iso}">${formatUtc(iso)}</time> <span class="muted">(${timeAgo(iso, nowMs)})</span>`;
}

function fields(rows: [string, HtmlValue][]): Html {
  return html`<dl>${rows.map(([name, value]) => html`<dt>${name}</dt><dd>${orNone(value)}</dd>`)}</dl>`;
}

function stateCards(m: MirrorState, nowMs: number): Html {
  const slotLag = m.slotLagBytes;
  const code = (v: string | null) => (v === null ? null : html`<code>${v}</code>`);
  return html`<section class="grid">
<div class="card"><h3>Workflow</h3>${fields([
    ['flow type', m.flowType], ['source', m.source], ['destination', m.destination],
    ['workflow id', code(m.workflowId)], ['run id', code(m.runId)],
  ])}</div>
<div class="card"><h3>Progress</h3>${fields([
    ['rows synced', m.rowsSynced === null ? null : formatCount(m.rowsSynced)],
    ['lag', m.lagSeconds === null ? null : formatDuration(m.lagSeconds)],
    ['slot lag', slotLag === null ? null : `${formatBytes(slotLag)} (${formatCount(slotLag)} bytes)`],
    ['slot sampled', at(m.slotLagSampledAt, nowMs)],
    ['slot WAL', m.slotWalStatus],
    ['status since', at(m.statusSince, nowMs)],
    ['last update', html`${at(m.observedAt, nowMs)}${m.seq ? html` <span class="muted">seq ${m.seq}</span>` : ''}`],
  ])}</div>
<div class="card"><h3>Record</h3>${fields([
    ['transitions', formatCount(m.transitionsTotal)],
    ['journal retained', `${formatCount(m.journalLength)} update${m.journalLength === 1 ? '' : 's'}`],
    ['oldest retained', at(m.journalOldestAt, nowMs)],
    ['first seen', at(m.createdAt, nowMs)],
    ['dropped', m.droppedAt === null ? null : at(m.droppedAt, nowMs)],
  ])}</div>
</section>`;
}

function transitionRow(t: TransitionView, nowMs: number): Html {
  return html`<tr data-transition="${t.id}"><td>${at(t.at, nowMs)}</td>
<td>${t.from === null ? html`<span class="muted">first update</span>` : statusBadge(t.from)} → ${statusBadge(t.to)}</td>
<td class="num">${t.seq}</td><td>${t.workflowId === null ? none() : html`<code>${t.workflowId}</code>`}</td>
<td>${t.error ? html`<span class="err" title="${t.error.message}">${t.error.class}</span>` : none()}</td></tr>`;
}

function eventRow(e: JournalEvent, nowMs: number): Html {
  return html`<tr data-event="${e.id}"><td>${at(e.observedAt, nowMs)}</td><td class="num">${e.seq}</td>
<td>${statusBadge(e.status)}${e.applied ? '' : html` <span class="stale" title="older than the version applied when it arrived">stale</span>`}</td>
<td><details><summary>payload</summary><pre>${JSON.stringify(e.payload, null, 2)}</pre></details></td></tr>`;
}

function table(head: Html, rows: Html | undefined, empty: string): Html {
  return html`<div class="card">${rows === undefined ? html`<div class="empty">${empty}</div>`
    : html`<table><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`}</div>`;
}

/** Initial-load progress: a bar (partitionsSynced / partitions) with the figures as text. */
function loadProgress(t: TableView): Html {
  const snap = t.snapshot;
  if (snap === null || snap.partitions === null) return snap?.rowsSynced != null ? html`${formatCount(snap.rowsSynced)} rows` : none();
  const done = snap.partitionsSynced ?? 0;
  const rows = snap.rowsSynced === null ? '' : html` · ${formatCount(snap.rowsSynced)} rows`;
  return html`<progress max="${snap.partitions}" value="${Math.min(done, snap.partitions)}"></progress>
<span class="load">${formatCount(done)} of ${formatCount(snap.partitions)} partitions</span>${rows}`;
}

function tableRow(t: TableView, nowMs: number): Html {
  return html`<tr data-table><td><code class="table-name"><bdi>${t.table}</bdi></code></td>
<td class="num">${t.rowsSynced === null ? none() : formatCount(t.rowsSynced)}</td><td>${at(t.lastSyncedAt, nowMs)}</td>
<td>${loadProgress(t)}</td><td>${t.error ? html`<span class="err" title="${t.error.message}">${t.error.class}</span>` : none()}</td></tr>`;
}

/** Each event shows its whole payload (its error message alone may be 8192 characters): fewer per chunk. */
const EVENTS_PER_CHUNK = 20;

export async function renderMirrorDetail(detail: MirrorDetail, nowMs: number, choice?: TimelineChoice): Promise<Html> {
  const m = detail.mirror;
  const api = mirrorApiHref(m.mirror);
  const { transitions, journal } = detail;
  const transitionRows = transitions.length ? await htmlEach(transitions, (t) => transitionRow(t, nowMs)) : undefined;
  const tableRows = detail.tables.length ? await htmlEach(detail.tables, (t) => tableRow(t, nowMs)) : undefined;
  const eventRows = journal.events.length ? await htmlEach(journal.events, (e) => eventRow(e, nowMs), EVENTS_PER_CHUNK) : undefined;
  const body = html`<p><a href="../">← all mirrors</a></p>
<h1><bdi class="mirror-name">${m.mirror}</bdi> ${statusBadge(m.status)}${m.dropped ? html` <span class="badge s-dropped">dropped</span>` : ''}</h1>
<p class="muted">${m.status} ${timeFor(m.statusSince, nowMs)} · last update ${timeAgo(m.observedAt, nowMs)}${api ? html` · <a href="${api}">JSON</a>` : ''}</p>
${m.error ? html`<div class="errbox"><strong>error</strong> <span class="err">${m.error.class}</span><pre>${m.error.message}</pre></div>` : ''}
${choice ? html`<h2>Timeline</h2>
${await renderTimeline(timelineSegments(detail.timeline, choice.window), choice.name, windowLinks(choice))}` : ''}
${stateCards(m, nowMs)}
<h2>Tables <small>${formatCount(detail.tables.length)}</small></h2>
${table(html`<th>Table</th><th class="num">Rows synced</th><th>Last synced</th><th>Initial load</th><th>Error</th>`,
    tableRows, 'No tables reported.')}
<h2>Transitions <small>newest ${formatCount(detail.transitions.length)} of ${formatCount(m.transitionsTotal)}</small></h2>
${table(html`<th>At</th><th>Change</th><th class="num">Seq</th><th>Workflow</th><th>Error</th>`,
    transitionRows, 'No transitions retained.')}
<h2>Journal <small>newest ${formatCount(detail.journal.events.length)} of ${formatCount(detail.journal.length)} retained</small></h2>
${table(html`<th>Observed at</th><th class="num">Seq</th><th>Status</th><th>Update as received</th>`,
    eventRows, 'No journal events retained.')}`;
  return page({ title: `${m.mirror} · mirrorstate`, root: '../', nowMs, body });
}

/** The answer for a name no mirror has. */
export function renderUnknownMirror(name: string, nowMs: number): Html {
  return notice('No such mirror', html`<p>No mirror is named <code><bdi>${name}</bdi></code>. It may never have
sent an update, or its name is spelt differently (names are case-sensitive).</p>`, nowMs, '../');
}

/** A page for an error the reader can act on (a bad parameter, an unknown mirror, the catalog away). */
export function notice(heading: string, message: Html, nowMs: number, root: string): Html {
  return page({ title: `${heading} · mirrorstate`, root, nowMs, body: html`<div class="notice"><p><a href="${root}">← all mirrors</a></p>
<h1>${heading}</h1>${message}</div>` });
}
