/**
 * The status page in a real browser: headless Chromium loads `/` and mirror pages from a running
 * daemon (the demo fleet plus hostile names). What Chromium built from the HTML must show the
 * right counts and rows, every hostile name as text, and no element or script of theirs: their
 * scripts would set document.title to `pwned`, their <img> would be an element of the DOM.
 * Without Chromium this test fails (it never skips): `.ci/run` installs it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUSES } from '../../src/update.js';
import { dumpDom, screenshot } from '../helpers/chromium.js';
import { type DaemonProcess, startDaemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { demoFleet } from '../helpers/demoFleet.js';
import { ago, SCHEMA, write } from '../reads/support.js';
import { chipCounts, detailCounts, headingName, HOSTILE, listedRows, unescapeHtml } from './support.js';

let db: TestDatabase;
let daemon: DaemonProcess;

/** The elements in a serialised DOM, by tag name (text is serialised escaped, so `<x` is a tag). */
function elements(dom: string, tag: string): string[] {
  return dom.match(new RegExp(`<${tag}\\b[^>]*>`, 'gi')) ?? [];
}

function title(dom: string): string {
  return unescapeHtml(/<title>([^<]*)<\/title>/.exec(dom)?.[1] ?? '');
}

beforeAll(async () => {
  db = await createTestDatabase('page_browser');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  await write(db.pool, demoFleet(Date.now()));
  await write(db.pool, HOSTILE.map((mirror, i) => ({
    mirror, status: 'failed', observedAt: ago(5_000 - i),
    error: { class: 'hostile', message: `<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'">` },
  })));
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

describe('in Chromium', () => {
  it('/ shows the counts and rows of the catalog, hostile names as text, and runs nothing of theirs', async () => {
    const dom = await dumpDom(`${daemon.url}/?limit=500`);
    expect(title(dom)).toBe('mirrorstate');
    expect(elements(dom, 'script')).toEqual([]);
    expect(elements(dom, 'img')).toEqual([]);
    expect(elements(dom, 'h1')).toEqual([]);

    const { rows: catalog } = await db.pool.query<{ mirror: string; status: string }>(
      `select mirror, status from ${SCHEMA}.mirrors where dropped_at is null order by mirror`);
    const rows = listedRows(dom);
    expect(rows.map((r) => [r.mirror, r.status])).toEqual(catalog.map((r) => [r.mirror, r.status]));
    const counts = chipCounts(dom);
    for (const status of STATUSES) expect(counts[status], status).toBe(catalog.filter((r) => r.status === status).length);
    expect(counts).toMatchObject({ all: catalog.length, dropped: 1, running: 19, failed: 2 + HOSTILE.length });
    // As text inside the name cell, exactly as named.
    expect(dom).toContain('<bdi>&lt;script&gt;alert(1)&lt;/script&gt;</bdi>');
    expect(dom).toContain(`<bdi>&lt;img src=x onerror="document.title='pwned'"&gt;</bdi>`);
  });

  it('a mirror page, reached by the link on /, shows that mirror and its history', async () => {
    const list = await dumpDom(`${daemon.url}/?status=failed`);
    for (const name of [`<img src=x onerror="document.title='pwned'">`, '<script>alert(1)</script>', '..', 'slash/name', 'fraud_signals_cdc']) {
      const row = listedRows(list).find((r) => r.mirror === name);
      expect(row, name).toBeDefined();
      const dom = await dumpDom(new URL(row?.href ?? '', `${daemon.url}/`).href);
      expect(headingName(dom)).toBe(name);
      expect(title(dom)).toBe(`${name} · mirrorstate`);
      expect(elements(dom, 'script')).toEqual([]);
      expect(elements(dom, 'img')).toEqual([]);
      const counts = detailCounts(dom);
      expect(counts.transitionRows).toBe(counts.transitionsTotal);
      expect(counts.eventRows).toBe(counts.journalLength);
      expect(counts.transitionRows).toBeGreaterThan(0);
      if (name !== 'fraud_signals_cdc') {
        expect(dom).toContain(`<pre>&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x onerror="document.title='pwned'"&gt;</pre>`);
      }
    }
  });

  it('renders a screenshot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mirrorstate-shot-'));
    try {
      const file = join(dir, 'page.png');
      await screenshot(`${daemon.url}/`, file, 1280, 900);
      const png = await readFile(file);
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1280, 900]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
