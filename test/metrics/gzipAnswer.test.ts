/**
 * gzip answers assembled from cached pieces (gzip.ts, answer.ts), without a database: after changes
 * to some mirrors (their tables' values, tables gained or lost, mirrors new or dropped) the
 * decompressed answer is the plain answer byte for byte, CRC and length included, whether the
 * families were joined ahead by a read (GzipFamilies.joinAll) or by the scrape; a join ahead
 * leaves the scrape nothing to copy, and a family whose pieces did not change keeps its join.
 */
import zlib from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { GzipFamilies, MirrorAnswers } from '../../src/metrics/answer.js';
import { MIRROR_FAMILIES } from '../../src/metrics/families.js';
import type { MirrorChange } from '../../src/metrics/feed.js';
import { compressBuckets, FINAL_EMPTY_BLOCK, GZIP_HEADER, gzipTrailer } from '../../src/metrics/gzip.js';
import type { MirrorRow, TableSample } from '../../src/metrics/readMirrorRows.js';
import { type Bucket, MirrorTextCache } from '../../src/metrics/textCache.js';

const MIRRORS = 300;
const noYield = async () => undefined;

/** Mirror i at revision r with `tables` tables (null: never reported any), one table in seven with an error. */
function row(i: number, r: number, tables: number | null = 3 + (i % 5)): MirrorRow {
  const samples: TableSample[] | null =
    tables === null ? null : Array.from({ length: tables }, (_, j): TableSample => [
      `public.t_${j}`, String(i * 1000 + j + r), `1765000000.${String(i + j + r).padStart(6, '0')}`, String(j), String(j % 3),
      j % 2 === 0 ? null : String(r * 7 + j), (i + j) % 7 === 0 ? 'connection' : null,
    ]);
  return {
    mirror: `mirror_${String(i).padStart(4, '0')}`, version: `${i}@${r}`, status: 'running', status_since: '1765000000.5',
    observed_at: '1765000000.25', transitions_total: '1', error_class: null, workflow_id: `wf-${i}`, flow_type: 'cdc',
    source_peer: 'pg', destination_peer: 'sf', rows_synced: String(i * 10 + r), lag_seconds: r / 4, slot_lag_bytes: null,
    slot_lag_sampled_at: null, slot_wal_status: null, tables: samples, table_count: samples === null ? null : String(samples.length),
  };
}

function change(i: number, r: number, tables?: number | null, dropped = false): MirrorChange {
  return { ...row(i, r, tables), dropped };
}

async function fleet(): Promise<{ cache: MirrorTextCache; buckets: Bucket[] }> {
  const cache = new MirrorTextCache(MIRROR_FAMILIES);
  const rows = Array.from({ length: MIRRORS }, (_, i) => row(i, 0, i % 11 === 0 ? null : undefined));
  cache.stale(rows.map(({ mirror, version }) => ({ mirror, version })));
  return { cache, buckets: await cache.update(rows, noYield, 64) };
}

/** The per-mirror part of a gzip answer as the route assembles it, decompressed, and the plain part. */
function answer(answers: MirrorAnswers, buckets: readonly Bucket[]): { plain: Buffer; unzipped: Buffer } {
  const part = answers.part(buckets, 'openmetrics', true);
  const zipped = Buffer.concat([GZIP_HEADER, ...part.deflated!, FINAL_EMPTY_BLOCK, gzipTrailer(part.crc!, part.plainLength)]);
  expect(zipped.length).toBe(GZIP_HEADER.length + part.deflatedLength! + FINAL_EMPTY_BLOCK.length + 8);
  // gunzipSync checks the trailer's CRC-32 and length against what it decoded.
  return { plain: Buffer.concat(part.plain), unzipped: zlib.gunzipSync(zipped) };
}

/** Values of a few mirrors' tables change; one mirror gains tables, one loses them all, one is dropped, one is new. */
const CHANGES = [change(5, 1), change(17, 1), change(42, 1, 12), change(43, 1, 0), change(44, 1, null), change(60, 1, 3, true), change(MIRRORS + 1, 1)];

describe('gzip answers from cached pieces', () => {
  it('decode to the plain answer, before and after changes to some mirrors, joined by the scrape', async () => {
    const { cache, buckets } = await fleet();
    const answers = new MirrorAnswers(MIRROR_FAMILIES, new GzipFamilies());
    await compressBuckets(buckets);
    const before = answer(answers, buckets);
    expect(before.unzipped.equals(before.plain)).toBe(true);
    const after = await cache.patch(CHANGES, noYield, 64);
    await compressBuckets(after);
    const { plain, unzipped } = answer(answers, after);
    expect(plain.toString()).toContain('peerdb_mirror_table_rows_synced_total{mirror="mirror_0042",table="public.t_11"} 42012');
    expect(plain.toString()).not.toContain('mirror="mirror_0060"');
    expect(unzipped.equals(plain)).toBe(true);
  });

  it('decode to the plain answer when a read joined the families ahead, leaving the scrape nothing to join', async () => {
    const { cache, buckets } = await fleet();
    const families = new GzipFamilies();
    const answers = new MirrorAnswers(MIRROR_FAMILIES, families);
    await compressBuckets(buckets);
    await families.joinAll(buckets, MIRROR_FAMILIES.length, noYield);
    // Several reads of changes, each compressed and joined ahead as a read does while gzip scrapes
    // come; the last changes tables only.
    let after = buckets;
    let joinedBefore: Buffer[] = [];
    for (const changes of [CHANGES, [change(7, 2), change(MIRRORS + 2, 2), change(8, 2, 6)], [change(7, 3, 4), change(9, 3, 0)]]) {
      joinedBefore = MIRROR_FAMILIES.map((_, f) => families.join(after, f).deflated);
      after = await cache.patch(changes, noYield, 64);
      await compressBuckets(after);
      await families.joinAll(after, MIRROR_FAMILIES.length, noYield);
    }
    const concat = vi.spyOn(Buffer, 'concat');
    let part;
    try {
      part = answers.part(after, 'openmetrics', true);
      expect(concat).not.toHaveBeenCalled();
    } finally {
      concat.mockRestore();
    }
    const { plain, unzipped } = answer(answers, after);
    expect(unzipped.equals(plain)).toBe(true);
    expect(part.deflated).toBeDefined();
    // A family the last changes did not touch (the info line) kept its join; a changed one did not.
    const info = MIRROR_FAMILIES.findIndex((f) => f.name === 'peerdb_mirror_info');
    const tableRows = MIRROR_FAMILIES.findIndex((f) => f.name === 'peerdb_mirror_table_rows_synced_total');
    expect(families.join(after, info).deflated).toBe(joinedBefore[info]);
    expect(families.join(after, tableRows).deflated).not.toBe(joinedBefore[tableRows]);
  });
});
