/**
 * The frame every status page shares: the document, its one inline stylesheet (no external fonts,
 * scripts or styles: the page works offline, behind any proxy, without JavaScript), the top bar, and
 * the small pieces used on more than one page (status badges, times, empty values).
 */
import { formatAgo, formatFor, formatUtc } from './format.js';
import { type Html, html, type HtmlValue, trustedHtml } from './html.js';
import { SPARKLINE_HEIGHT, SPARKLINE_WIDTH } from './sparkline.js';

const CSS = trustedHtml(`
:root { --fg:#1f2933; --muted:#6b7785; --line:#e3e8ee; --bg:#f6f8fa; --card:#fff; --accent:#2454d6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size:12.5px; }
.wrap { max-width:1240px; margin:0 auto; padding:0 24px; }
header.top { background:#17202b; color:#e8edf3; }
header.top .wrap { display:flex; align-items:center; gap:16px; height:52px; }
header.top .brand { color:#fff; font-weight:650; font-size:16px; letter-spacing:.2px; }
header.top .asof { color:#9aa8b8; font-size:12.5px; }
header.top nav { margin-left:auto; display:flex; gap:18px; } header.top nav a { color:#c6d2df; font-size:13px; }
main.wrap { padding-top:22px; padding-bottom:48px; }
h1 { font-size:22px; margin:6px 0 4px; font-weight:650; display:flex; align-items:center; gap:12px; flex-wrap:wrap; word-break:break-all; }
h2 { font-size:15px; margin:28px 0 10px; font-weight:650; } h2 small { color:var(--muted); font-weight:400; font-size:13px; margin-left:6px; }
.muted { color:var(--muted); } .none { color:#aab4bf; }
.chips { display:flex; flex-wrap:wrap; gap:8px; margin:0 0 18px; }
.chip { display:flex; flex-direction:column; flex:1 1 0; min-width:72px; padding:7px 10px 6px; background:var(--card); border:1px solid var(--line);
  border-radius:8px; color:var(--fg); border-top:3px solid var(--c, #cbd2d9); }
.chip:hover { text-decoration:none; border-color:#c3ccd6; border-top-color:var(--c, #cbd2d9); }
.chip .n { font-size:20px; font-weight:650; line-height:1.2; font-variant-numeric:tabular-nums; }
.chip .label { font-size:11.5px; white-space:nowrap; color:var(--muted); }
.chip.zero { opacity:.45; } .chip.active { background:#eef3ff; border-color:var(--accent); border-top-color:var(--c, var(--accent)); }
.bar { display:flex; align-items:center; gap:14px; margin:0 0 10px; color:var(--muted); flex-wrap:wrap; }
.bar.bottom { margin:10px 0 0; }
.bar .pager { margin-left:auto; display:flex; gap:8px; }
.pager a, .pager span { padding:4px 10px; border:1px solid var(--line); border-radius:6px; background:var(--card); font-size:13px; }
.pager span { color:#aab4bf; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
table { width:100%; border-collapse:collapse; }
th { text-align:left; font-size:12px; font-weight:600; color:var(--muted); text-transform:uppercase; letter-spacing:.4px;
  background:#fafbfc; border-bottom:1px solid var(--line); padding:9px 10px; vertical-align:bottom; }
td { padding:9px 10px; border-bottom:1px solid #eef1f4; vertical-align:top; }
tbody tr:last-child td { border-bottom:0; } tbody tr:hover td { background:#fafcff; }
.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.name { min-width:10em; max-width:360px; word-break:break-all; } td.name a { font-weight:550; }
.table-name { word-break:break-all; }
.sub { color:var(--muted); font-size:12px; margin-top:1px; word-break:break-all; }
time { white-space:nowrap; }
.badge { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12px; font-weight:600; line-height:19px;
  background:var(--b, #eef1f4); color:var(--t, #3e4c59); white-space:nowrap; }
h1 .badge { font-size:13px; line-height:22px; }
.s-running { --b:#dcf5e3; --t:#17663a; --c:#2fa35a; }
.s-failed { --b:#fde2e1; --t:#a11b1b; --c:#d93838; }
.s-paused, .s-pausing { --b:#fdf0d2; --t:#8a5300; --c:#e3a008; }
.s-setup, .s-snapshot, .s-resync, .s-modifying { --b:#dde8fd; --t:#1f4bb0; --c:#3b76e8; }
.s-terminating, .s-terminated, .s-completed { --b:#e8ebef; --t:#4a5563; --c:#8995a3; }
.s-unknown { --b:#efe4fb; --t:#6a2fa8; --c:#9b5de5; }
.s-dropped { --b:#f1f2f4; --t:#6b7785; --c:#6b7785; border:1px dashed #b6bec8; }
.err { display:inline-block; font-size:12px; color:#a11b1b; background:#fff1f0; border:1px solid #f6cfcc; border-radius:4px;
  padding:0 6px; max-width:200px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; vertical-align:top; }
.errbox { margin:14px 0 0; border:1px solid #f6cfcc; background:#fff6f5; border-radius:8px; padding:12px 14px; }
.errbox pre { margin:6px 0 0; white-space:pre-wrap; word-break:break-word; max-height:240px; overflow:auto; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(340px, 1fr)); gap:14px; margin-top:16px; }
.grid .card { padding:4px 0; } .grid h3 { font-size:12px; text-transform:uppercase; letter-spacing:.4px; color:var(--muted); margin:10px 14px 4px; }
dl { display:grid; grid-template-columns:150px 1fr; margin:0; padding:0 14px 8px; }
dt { color:var(--muted); padding:5px 0; } dd { margin:0; padding:5px 0; word-break:break-all; }
details summary { cursor:pointer; color:var(--accent); font-size:12.5px; }
details pre { margin:6px 0 0; white-space:pre-wrap; word-break:break-all; max-width:640px; max-height:320px; overflow:auto;
  background:#f6f8fa; padding:8px; border-radius:6px; }
.stale { color:#8a5300; font-size:12px; }
.empty { padding:28px; text-align:center; color:var(--muted); }
.notice h1 { font-size:20px; } .notice p { max-width:720px; }
.timeline-card { padding:10px 14px 8px; } .timeline-head { margin:0 0 8px; }
.windows { display:flex; gap:6px; } .windows a, .windows span { padding:2px 9px; border:1px solid var(--line); border-radius:6px; font-size:12.5px; }
.windows span { background:#eef3ff; border-color:var(--accent); color:var(--fg); }
svg.timeline, svg.spark { display:block; } svg.spark { display:inline-block; vertical-align:middle; border-radius:2px; background:#eef1f4;
  width:${SPARKLINE_WIDTH}px; height:${SPARKLINE_HEIGHT}px; }
svg .seg { fill:var(--c, #cbd2d9); } svg .seg.merged { fill:#3e4c59; } svg .nodata { fill:#eef1f4; }
svg.spark path { fill:var(--c, #cbd2d9); stroke:var(--c, #cbd2d9); stroke-width:1px; vector-effect:non-scaling-stroke; } svg.spark path.merged { --c:#3e4c59; }
.axis { display:flex; justify-content:space-between; color:var(--muted); font-size:12px; margin-top:3px; }
.legend { display:flex; flex-wrap:wrap; gap:4px 16px; list-style:none; margin:8px 0 4px; padding:0; font-size:12.5px; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; background:var(--c, #cbd2d9); vertical-align:-1px; }
.swatch.merged { background:#3e4c59; }
.merged-note { font-size:12.5px; margin:4px 0; } .periods { margin:4px 0 2px; } .periods ol { margin:6px 0 0; padding-left:22px; font-size:12.5px; max-height:260px; overflow:auto; }
`);

export interface PageFrame {
  title: string;
  /** Relative path from this page to `/` (`./` for the front page, `../` below /mirrors/). */
  root: string;
  /** When the data shown was read (the page's one "now"). */
  nowMs: number;
  body: Html;
}

export function page({ title, root, nowMs, body }: PageFrame): Html {
  const asOf = new Date(nowMs).toISOString();
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><style>${CSS}</style></head>
<body><header class="top"><div class="wrap"><a class="brand" href="${root}">mirrorstate</a>
<span class="asof">as of <time datetime="${asOf}">${formatUtc(asOf)}</time></span>
<nav><a href="${root}">mirrors</a><a href="${root}api/v1/mirrors">JSON API</a><a href="${root}metrics">metrics</a><a href="${root}readyz">readyz</a></nav></div></header>
<main class="wrap">${body}</main></body></html>
`;
}

export function statusBadge(status: string): Html {
  return html`<span class="badge s-${status}">${status}</span>`;
}

/** A relative time, with the exact RFC 3339 value (microseconds) in the tooltip. */
export function timeAgo(iso: string | null, nowMs: number): Html {
  if (iso === null) return none();
  return html`<time datetime="${iso}" title="${iso}">${formatAgo(iso, nowMs)}</time>`;
}

/** How long a state has lasted (`for 12 min`), with the exact time it began in the tooltip. */
export function timeFor(iso: string | null, nowMs: number): Html {
  if (iso === null) return none();
  return html`<time datetime="${iso}" title="${iso}">${formatFor(iso, nowMs)}</time>`;
}

export function none(): Html {
  return html`<span class="none">—</span>`;
}

export function orNone(value: HtmlValue): HtmlValue {
  return value === null || value === undefined || value === '' ? none() : value;
}
