/**
 * A mirror's tables on the status page in a real browser: headless Chromium loads the mirror's
 * page and the fleet list from a running daemon, and the test asks the page itself (over the
 * DevTools protocol) what it shows. Table names that are markup, bidi overrides, zero-width
 * characters and 512 characters long must be shown as text, exactly as published, run nothing
 * (their scripts would set document.title, their <img> would be an element), and not push the
 * page wider than the window nor the other columns out of view; each initial load's bar must stand at partitionsSynced / partitions,
 * as the browser computes it, with the figures beside it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateInPage } from '../helpers/chromium.js';
import { type DaemonProcess, startDaemon } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { ago, write } from '../reads/support.js';

const MIRROR = 'tables <b>"hostile"</b>';
const LONG = `long_${'🚀'.repeat(7)}${'x'.repeat(500)}`; // 512 characters, 519 UTF-16 units
const TABLES = [
  { table: `<script>document.title='pwned'</script>`, rowsSynced: 10, snapshot: { partitions: 4, partitionsSynced: 1, rowsSynced: 250 } },
  { table: `"><img src=x onerror="document.title='pwned'">`, snapshot: { partitions: 10, partitionsSynced: 10 },
    error: { class: 'hostile', message: `<img src=x onerror="document.title='pwned'">` } },
  { table: '\u202Eright-to-left.tsil', snapshot: { partitions: 3, partitionsSynced: 0 } },
  { table: 'zero\u200Bwidth\u200Cjoin\u200D\uFEFF.x', rowsSynced: 5 },
  { table: LONG, snapshot: { partitions: 8, partitionsSynced: 3 } },
];

let db: TestDatabase;
let daemon: DaemonProcess;

interface Bar {
  max: number;
  value: number;
  /** HTMLProgressElement.position: the fraction the browser fills. */
  position: number;
  width: number;
}

interface Seen {
  title: string;
  scripts: number;
  images: number;
  /** How far the page is wider than the window (≤ 0: no horizontal scroll). */
  overflow: number;
  /** `clipped`: cells of the row that end past its card's right edge, where the card cuts them off. */
  tables: { name: string; isolated: boolean; bar: Bar | null; figures: string | null; clipped: number }[];
  list: { mirror: string; bar: Bar | null; figures: string | null }[];
}

/** Runs in the page: what it shows, as the browser laid it out. */
const READ_PAGE = `(() => {
  const bar = (p) => p && { max: p.max, value: p.value, position: p.position, width: p.getBoundingClientRect().width };
  return {
    title: document.title,
    scripts: document.scripts.length,
    images: document.images.length,
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    tables: [...document.querySelectorAll('tr[data-table]')].map((tr) => {
      const name = tr.querySelector('code.table-name bdi');
      const edge = tr.closest('.card').getBoundingClientRect().right;
      return { name: name.textContent, isolated: getComputedStyle(name).unicodeBidi === 'isolate',
        bar: bar(tr.querySelector('progress')), figures: tr.querySelector('span.load')?.textContent ?? null,
        clipped: [...tr.cells].filter((c) => c.getBoundingClientRect().right > edge + 0.5).length };
    }),
    list: [...document.querySelectorAll('tr[data-mirror]')].map((tr) => ({ mirror: tr.dataset.mirror,
      bar: bar(tr.querySelector('progress')), figures: tr.querySelector('span.load')?.textContent ?? null })),
  };
})()`;

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

beforeAll(async () => {
  db = await createTestDatabase('page_tables_browser');
  daemon = await startDaemon({ databaseUrl: db.url, env: { MIRRORSTATE_TRIM_INTERVAL: '1h' } });
  await write(db.pool, [{ mirror: MIRROR, status: 'snapshot', observedAt: ago(1000), tables: TABLES }]);
});

afterAll(async () => {
  await daemon?.stop();
  await db?.drop();
});

describe('a mirror\'s tables in Chromium', () => {
  it('shows every hostile name as text, runs nothing of theirs, and draws each load\'s bar at its fraction', async () => {
    const seen = await evaluateInPage<Seen>(`${daemon.url}/mirrors/${encodeURIComponent(MIRROR)}`, READ_PAGE);
    expect(seen.title).toBe(`${MIRROR} · mirrorstate`);
    expect(seen.scripts).toBe(0);
    expect(seen.images).toBe(0);
    expect(seen.overflow).toBeLessThanOrEqual(0);

    // Every name exactly as published, each in its own bidi isolate, in byte order.
    const expected = [...TABLES].sort((a, b) => byteOrder(a.table, b.table));
    expect(seen.tables.map((t) => t.name)).toEqual(expected.map((t) => t.table));
    expect(seen.tables.every((t) => t.isolated)).toBe(true);
    // A long name wraps: no row's figures, bar or error are pushed out of the card, which clips them.
    expect(seen.tables.map((t) => t.clipped)).toEqual(expected.map(() => 0));

    for (const [i, t] of expected.entries()) {
      const shown = seen.tables[i]!;
      if (t.snapshot === undefined) {
        expect(shown.bar, t.table).toBeNull();
        continue;
      }
      const { partitions, partitionsSynced } = t.snapshot;
      expect(shown.bar, t.table).toMatchObject({ max: partitions, value: partitionsSynced });
      expect(shown.bar!.position, t.table).toBeCloseTo(partitionsSynced / partitions, 6);
      expect(shown.figures, t.table).toBe(`${partitionsSynced} of ${partitions} partitions`);
    }
    // The bars are one width however long the name beside them.
    const widths = seen.tables.flatMap((t) => (t.bar ? [t.bar.width] : []));
    expect(widths).toHaveLength(4);
    expect(widths[0]).toBeGreaterThan(20);
    expect(new Set(widths).size).toBe(1);
  });

  it('the fleet list draws the loading mirror\'s bar at its tables\' summed fraction', async () => {
    const seen = await evaluateInPage<Seen>(`${daemon.url}/?status=snapshot`, READ_PAGE);
    expect(seen.title).toBe('snapshot mirrors · mirrorstate');
    expect(seen.scripts).toBe(0);
    expect(seen.images).toBe(0);
    const loads = TABLES.flatMap((t) => (t.snapshot ? [t.snapshot] : []));
    const partitions = loads.reduce((n, s) => n + s.partitions, 0);
    const synced = loads.reduce((n, s) => n + s.partitionsSynced, 0);
    expect(seen.list).toHaveLength(1);
    expect(seen.list[0]!.mirror).toBe(MIRROR);
    expect(seen.list[0]!.bar).toMatchObject({ max: partitions, value: synced });
    expect(seen.list[0]!.bar!.position).toBeCloseTo(synced / partitions, 6);
    expect(seen.list[0]!.figures).toBe(`${synced} of ${partitions}`);
  });
});
