/**
 * The status page over HTTP, against the daemon as a process: hostile names escaped and linked to
 * their own pages (dots, slashes, percent signs and all), counts per status, the status filter,
 * keyset paging both ways, dropped mirrors, 404 and 400 pages, self-containment, and one snapshot
 * per page while writers change the catalog underneath.
 */
import { get as httpGet } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerApiRoutes } from '../../src/http/api.js';
import { registerStatusPage } from '../../src/http/page/routes.js';
import { HttpServer } from '../../src/http/server.js';
import { createLogger } from '../../src/log.js';
import { STATUSES } from '../../src/update.js';
import { type DaemonProcess, startDaemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { ago, SCHEMA, write } from '../reads/support.js';
import { chipCounts, detailCounts, headingName, HOSTILE, listedRows, pagerHref, unescapeHtml } from './support.js';

const PAGED = Array.from({ length: 23 }, (_, i) => `paged_${String(i).padStart(2, '0')}`);

let db: TestDatabase;
let daemon: DaemonProcess;

/** A GET of the path exactly as written (no dot-segment resolution), as `curl --path-as-is` sends it. */
function rawGet(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port: daemon.port, path }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
}

async function get(path: string): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(new URL(path, `${daemon.url}/`));
  return { status: res.status, body: await res.text(), headers: res.headers };
}

beforeAll(async () => {
  db = await createTestDatabase('page_http');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  await write(db.pool, [
    ...HOSTILE.map((mirror, i) => ({ mirror, status: 'running', observedAt: ago(30_000 - i), rowsSynced: 1000 + i })),
    ...PAGED.map((mirror, i) => ({
      mirror, status: 'snapshot', observedAt: ago(20_000 - i),
      ...(i === 0 ? { tables: [{ table: 'a', snapshot: { partitions: 4, partitionsSynced: 1 } }, { table: 'b', snapshot: { partitions: 6, partitionsSynced: 6 } }] } : {}),
    })),
    { mirror: 'detail', status: 'setup', observedAt: ago(60_000), workflowId: 'wf-<1>', flowType: 'cdc', source: 'pg', destination: 'sf' },
    { mirror: 'detail', status: 'running', observedAt: ago(50_000), rowsSynced: 1_234_567, lagSeconds: 200, slotLagBytes: 5.5 * 1024 ** 3, slotLagSampledAt: ago(55_000), slotWalStatus: 'unreserved' },
    { mirror: 'detail', status: 'failed', observedAt: ago(40_000), error: { class: 'ssl_error', message: '<script>document.title="pwned"</script> & "more"' } },
    {
      // Dropped (so no list count changes), its page still shows: its tables too.
      mirror: 'gone', status: 'terminated', observedAt: ago(10_000), dropped: true, tables: [
        { table: 'public.orders', rowsSynced: 12_345, snapshot: { partitions: 8, partitionsSynced: 3, rowsSynced: 3000 } },
        { table: '<b>x</b>"&\u202e', error: { class: 'schema_changed', message: '<i>boom</i>' } },
      ],
    },
  ]);
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

describe('GET /', () => {
  it('shows every live mirror once, each name as text, each linking to its own page', async () => {
    const { status, body, headers } = await get('/?limit=500');
    expect(status).toBe(200);
    expect(headers.get('content-type')).toBe('text/html; charset=utf-8');
    const rows = listedRows(body);
    expect(rows.map((r) => r.mirror).sort()).toEqual([...HOSTILE, ...PAGED, 'detail'].sort());
    for (const name of HOSTILE.filter((n) => /[<>"']/.test(n))) expect(body).not.toContain(name);
    expect(body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(body).not.toContain('<h1>injected');
    for (const row of rows) {
      // Resolved as a browser resolves it (dot segments and all), from the page's own URL.
      const page = await get(new URL(row.href, `${daemon.url}/`).href);
      expect(page.status, row.mirror).toBe(200);
      expect(headingName(page.body), row.href).toBe(row.mirror);
    }
  });

  it('counts mirrors per status from the catalog, and filters by status', async () => {
    const { body } = await get('/');
    const { rows } = await db.pool.query<{ status: string; n: number }>(
      `select status, count(*)::int as n from ${SCHEMA}.mirrors where dropped_at is null group by status`);
    const expected = Object.fromEntries(STATUSES.map((s) => [s, rows.find((r) => r.status === s)?.n ?? 0]));
    expect(chipCounts(body)).toEqual({ all: HOSTILE.length + PAGED.length + 1, ...expected, dropped: 1 });
    expect(expected).toMatchObject({ running: HOSTILE.length, snapshot: PAGED.length, failed: 1 });

    const failed = await get('/?status=failed');
    expect(listedRows(failed.body).map((r) => [r.mirror, r.status])).toEqual([['detail', 'failed']]);
    expect(failed.body).toMatch(/<td class="num">1,234,567<\/td>\s*<td class="num">3 min 20 s<\/td>\s*<td class="num"><span title="5,905,580,032 bytes">5.5 GiB<\/span><\/td>/);
    expect(failed.body).toMatch(/class="chip s-failed active"/);
    // Every spelling of a status the update message accepts: upper case, STATUS_ prefixed, the code.
    for (const spelling of ['FAILED', 'STATUS_FAILED', String(STATUSES.indexOf('failed'))]) {
      expect(listedRows((await get(`/?status=${spelling}`)).body), spelling).toEqual([{ ...listedRows(failed.body)[0] }]);
    }
    expect((await get('/?status=12')).status).toBe(400);
    expect(listedRows((await get('/?status=paused')).body)).toEqual([]);
  });

  it('pages through a filter by name, forwards and back, each mirror exactly once', async () => {
    const { rows: ordered } = await db.pool.query<{ mirror: string }>(
      `select mirror from ${SCHEMA}.mirrors where status = 'snapshot' order by mirror`);
    const seen: string[] = [];
    const pages: string[] = [];
    let href: string | undefined = '/?status=snapshot&limit=7';
    while (href !== undefined) {
      const { body } = await get(href);
      pages.push(body);
      seen.push(...listedRows(body).map((r) => r.mirror));
      expect(listedRows(body).every((r) => r.status === 'snapshot')).toBe(true);
      href = pagerHref(body, 'next');
      expect(pages.length).toBeLessThan(10);
    }
    expect(seen).toEqual(ordered.map((r) => r.mirror));
    expect(pages.map((p) => listedRows(p).length)).toEqual([7, 7, 7, 2]);
    expect(pagerHref(pages[0] as string, 'prev')).toBeUndefined();

    const back: string[] = [];
    href = pagerHref(pages[pages.length - 1] as string, 'prev');
    while (href !== undefined) {
      const { body } = await get(href);
      back.unshift(...listedRows(body).map((r) => r.mirror));
      href = pagerHref(body, 'prev');
      expect(back.length).toBeLessThan(100);
    }
    expect(back).toEqual(seen.slice(0, 21));
  });

  it('leaves dropped mirrors out unless ?dropped=true, and still shows their pages', async () => {
    expect(listedRows((await get('/?limit=500')).body).map((r) => r.mirror)).not.toContain('gone');
    const all = await get('/?limit=500&dropped=true');
    const gone = listedRows(all.body).find((r) => r.mirror === 'gone');
    expect(gone).toMatchObject({ status: 'terminated' });
    expect(all.body).toMatch(/data-mirror="gone"[\s\S]*?<span class="badge s-dropped"/);
    const page = await get(`/${gone?.href}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<span class="badge s-dropped">dropped</span>');
  });

  it('answers 400 pages naming a bad parameter', async () => {
    for (const [query, parameter] of [['status=bogus', 'status'], ['limit=0', 'limit'], ['limit=501', 'limit'],
      ['limit=abc', 'limit'], ['dropped=maybe', 'dropped'], ['after=a&before=b', 'before']]) {
      const { status, body, headers } = await get(`/?${query}`);
      expect(status, query).toBe(400);
      expect(headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(body).toContain(`Bad parameter: ${parameter}`);
    }
    expect((await get('/?status=%3Cscript%3E')).body).toContain('got &quot;&lt;script&gt;&quot;');
  });

  it('is self-contained: nothing loaded from anywhere, no script, and a policy that forbids both', async () => {
    for (const path of ['/', '/mirrors/detail', '/mirrors/nope', '/?status=bogus']) {
      const { body, headers } = await get(path);
      // Every tag the page has (text is escaped, so a raw `<` only ever starts one of ours).
      const tags = body.match(/<[a-z][^>]*>/gi) ?? [];
      expect(tags.length).toBeGreaterThan(10);
      const bare = tags.map((t) => t.replace(/="[^"]*"/g, '=""')); // attribute values are data, not markup
      expect(bare.filter((t) => /^<(script|link|img|iframe|object|embed|base)\b|\s(src|srcset|style|on[a-z]+)=/i.test(t))).toEqual([]);
      const hrefs = [...body.matchAll(/\shref="([^"]*)"/g)].map((m) => m[1]);
      expect(hrefs.filter((h) => /^([a-z]+:|\/\/)/i.test(h ?? ''))).toEqual([]);
      const css = /<style>([\s\S]*?)<\/style>/.exec(body)?.[1] ?? '';
      expect(css).not.toMatch(/url\(|@import|@font-face/);
      expect(headers.get('content-security-policy')).toMatch(/default-src 'none'/);
      expect(headers.get('content-security-policy')).not.toMatch(/script-src/);
    }
    const head = await fetch(`${daemon.url}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });
});

describe('GET /mirrors/{mirror}', () => {
  it('shows the current state, the transitions and the journal, escaped', async () => {
    const { status, body } = await get('/mirrors/detail?events=10');
    expect(status).toBe(200);
    expect(headingName(body)).toBe('detail');
    expect(detailCounts(body)).toEqual({
      transitionRows: 3, transitionsShown: 3, transitionsTotal: 3, eventRows: 3, eventsShown: 3, journalLength: 3,
    });
    expect(body).toContain('1,234,567');
    // How long the status has lasted reads as a duration: "failed for 40 s", never "for 40 s ago".
    expect(body).toMatch(/<p class="muted">failed <time datetime="[^"]+" title="[^"]+">for \d+ s<\/time> · last update/);
    expect(body).not.toMatch(/for [^<]* ago/);
    expect(body).toContain('3 min 20 s');
    expect(body).toContain('5.5 GiB (5,905,580,032 bytes)');
    // The slot sample's own time and its WAL status, beside the lag they came with.
    expect(body).toMatch(/<dt>slot sampled<\/dt><dd><time datetime="[^"]+"[^>]*>[^<]+<\/time> <span class="muted">\(<time [^>]+>\d+ s ago<\/time>\)<\/span><\/dd>/);
    expect(body).toContain('<dt>slot WAL</dt><dd>unreserved</dd>');
    expect(body).toContain('<code>wf-&lt;1&gt;</code>');
    expect(body).toContain('<pre>&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt; &amp; &quot;more&quot;</pre>');
    expect(body).not.toContain('<script>document.title');
    const [first, second] = [...body.matchAll(/<tr data-transition="(\d+)">/g)].map((m) => Number(m[1]));
    expect(first).toBeGreaterThan(second as number); // newest first
    const capped = detailCounts((await get('/mirrors/detail?events=1&transitions=2')).body);
    expect(capped).toMatchObject({ transitionRows: 2, transitionsTotal: 3, eventRows: 1, journalLength: 3 });
  });

  it('shows a mirror\'s tables from the same snapshot: rows, initial-load progress as a bar with its figures, errors, names as text', async () => {
    const { status, body } = await get('/mirrors/gone');
    expect(status).toBe(200);
    expect(body).toContain('<h2>Tables <small>2</small></h2>');
    expect(body.match(/<tr data-table>/g)).toHaveLength(2);
    expect(body).toContain('<code class="table-name"><bdi>public.orders</bdi></code>');
    expect(body).toContain('12,345');
    expect(body).toContain('<progress max="8" value="3"></progress>');
    expect(body).toContain('<span class="load">3 of 8 partitions</span> · 3,000 rows');
    expect(body).toContain('<code class="table-name"><bdi>&lt;b&gt;x&lt;/b&gt;&quot;&amp;\u202e</bdi></code>');
    expect(body).not.toContain('<b>x</b>');
    expect(body).toContain('<span class="err" title="&lt;i&gt;boom&lt;/i&gt;">schema_changed</span>');
    expect((await get('/mirrors/detail')).body).toContain('No tables reported.');
  });

  it('shows a progress column for mirrors loading: their tables\' partitions summed, from the list\'s snapshot', async () => {
    const { body } = await get('/?status=snapshot&limit=500');
    const loading = /<tr data-mirror="paged_00"[^]*?<\/tr>/.exec(body)?.[0] ?? '';
    expect(loading).toContain('<progress max="10" value="7"></progress>');
    expect(loading).toContain('<span class="load">7 of 10</span>');
    const other = /<tr data-mirror="paged_01"[^]*?<\/tr>/.exec(body)?.[0] ?? '';
    expect(other).toContain('<td class="load">');
    expect(other).not.toContain('<progress');
  });

  it('answers an HTML 404 naming an unknown mirror as text', async () => {
    const { status, body, headers } = await get(`/mirrors/${encodeURIComponent('<b>nope</b>')}`);
    expect(status).toBe(404);
    expect(headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(body).toContain('&lt;b&gt;nope&lt;/b&gt;');
    expect(body).not.toContain('<b>nope');
    expect((await get('/mirrors/?name=nope')).status).toBe(404);
  });

  it('serves . and .. by ?name= (browsers resolve them in paths), and as raw paths for curl', async () => {
    for (const name of ['.', '..']) {
      expect(headingName((await get(`/mirrors/?name=${encodeURIComponent(name)}`)).body)).toBe(name);
      // fetch() resolves dot segments like a browser; node:http sends the path as written.
      const raw = await rawGet(`/mirrors/${name === '.' ? '%2E' : '%2E%2E'}`);
      expect(headingName(raw)).toBe(name);
    }
    const redirect = await fetch(`${daemon.url}/mirrors/`, { redirect: 'manual' });
    expect(redirect.status).toBe(303);
  });

  it('answers 400 pages for bad parameters and bad encodings', async () => {
    expect((await get('/mirrors/detail?events=201')).body).toContain('Bad parameter: events');
    expect((await get('/mirrors/detail?transitions=-1')).status).toBe(400);
    const bad = await get('/mirrors/%E0%A4%A');
    expect(bad.status).toBe(400);
    expect(unescapeHtml(bad.body)).toContain('Bad parameter: mirror');
  });
});

describe('catalog unreachable', () => {
  it('answers a 503 page, not a stack or a hang, and the read API 503 alike', async () => {
    // The routes on a server of their own whose catalog is a port nothing listens on.
    const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMillis: 2_000 });
    const server = new HttpServer(createLogger('silent'));
    registerStatusPage(server, { pool, schema: SCHEMA, logger: createLogger('silent') });
    registerApiRoutes(server, { pool, schema: SCHEMA, logger: createLogger('silent') });
    const { port } = await server.start(0, '127.0.0.1');
    try {
      for (const path of ['/', '/mirrors/detail']) {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(res.status).toBe(503);
        expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
        const body = await res.text();
        expect(body).toContain('Catalog unavailable');
        expect(body).not.toMatch(/ECONNREFUSED|at .*\.js:\d+/);
      }
      for (const path of ['/api/v1/mirrors', '/api/v1/mirrors?dropped=true', '/api/v1/mirrors/detail', '/api/v1/mirrors/detail/transitions']) {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(res.status, path).toBe(503);
        const body = (await res.json()) as { error: string };
        expect(body.error).toMatch(/^catalog unavailable/);
        expect(body.error).not.toMatch(/ECONNREFUSED/);
      }
    } finally {
      await server.stop();
      await pool.end();
    }
  });
});

describe('one snapshot per page', () => {
  it('counts match the rows, and a mirror page its own totals, while writers flip statuses', async () => {
    const flips = Array.from({ length: 20 }, (_, i) => `flip_${String(i).padStart(2, '0')}`);
    let writing = true;
    let writes = 0;
    const writer = (async () => {
      // Each write flips every flip_ mirror (20 transitions) and adds a journal row to each; 150
      // writes keep flip_00's journal within the page's 200 events, so all of it is shown.
      while (writing && writes < 150) {
        await write(db.pool, flips.map((mirror) => ({ mirror, status: writes % 2 ? 'paused' : 'running', observedAt: ago(0, writes % 1000) })));
        writes++;
      }
    })();
    let reads = 0;
    try {
      while (writes < 150 && reads < 400) {
        const list = (await get('/?limit=500')).body;
        const counts = chipCounts(list);
        const rows = listedRows(list);
        for (const status of STATUSES) {
          expect(rows.filter((r) => r.status === status).length, `${status} after ${writes} writes`).toBe(counts[status]);
        }
        const d = detailCounts((await get('/mirrors/flip_00?events=200&transitions=1000')).body);
        expect(d.transitionRows).toBe(d.transitionsTotal);
        expect(d.eventRows).toBe(d.journalLength);
        reads++;
      }
    } finally {
      writing = false;
      await writer;
    }
    expect(reads).toBeGreaterThan(10);
    expect(writes).toBeGreaterThan(10);
  });
});

describe('one snapshot for a list page and its progress column', () => {
  it('shows each loading mirror\'s progress from the tables of its row\'s commit, while writers replace them', async () => {
    // Version v gives each mirror 1 + v % 5 tables of v partitions each and a rowsSynced of their
    // sum: the progress bar's max equals the row's rowsSynced only when both come from one commit.
    // Counted over a fixed number of page reads and writes, not a time window.
    const loading = Array.from({ length: 5 }, (_, i) => `loading_${i}`);
    let version = 0;
    const writeVersion = async () => {
      const v = ++version;
      const count = 1 + (v % 5);
      const tables = Array.from({ length: count }, (_, i) => ({ table: `t${i}`, snapshot: { partitions: v, partitionsSynced: v - 1 } }));
      await write(db.pool, loading.map((mirror) => ({ mirror, status: 'resync', observedAt: ago(0, v % 1000), rowsSynced: v * count, tables })));
    };
    await writeVersion();
    let reading = true;
    const writer = (async () => {
      while (reading || version < 40) await writeVersion();
    })();
    const skewed: string[] = [];
    let reads = 0;
    try {
      for (; reads < 100; reads++) {
        const { body } = await get('/?status=resync&limit=500');
        for (const mirror of loading) {
          const row = new RegExp(`<tr data-mirror="${mirror}"[^]*?</tr>`).exec(body)?.[0] ?? '';
          const bar = /<progress max="(\d+)" value="(\d+)">/.exec(row);
          const rows = /<td class="num">([\d,]+)<\/td>/.exec(row)?.[1]?.replaceAll(',', '');
          if (bar?.[1] === undefined || bar[1] !== rows) skewed.push(`${mirror}: bar ${bar?.[0]}, rows ${rows}`);
        }
      }
    } finally {
      reading = false;
      await writer;
    }
    expect(skewed.slice(0, 3)).toEqual([]);
    expect(reads).toBe(100);
    expect(version).toBeGreaterThanOrEqual(40);
  });
});
