/**
 * The per-mirror families of CONTRACT §5, declared once, and their text rendered once per mirror
 * version (kube-state-metrics style): a scrape only concatenates cached strings.
 *
 * A mirror's cached text is keyed by its row version (`xmin` with `updated_at`, see
 * readMirrorRows.ts): any write to the row, by whichever writer, changes it, so a cached text is
 * never served for a row it was not rendered from. Mirrors absent from a snapshot (dropped, or
 * gone) leave the cache with it.
 */
import { STATUSES } from '../update.js';
import { escapeLabelValue, type Family, formatValue } from './exposition.js';
import type { MirrorRow, MirrorVersion } from './readMirrorRows.js';

export interface MirrorFamily extends Family {
  /** This mirror's sample lines of the family, each ending in a line feed; `m` is `mirror="…"`, escaped. */
  samples(row: MirrorRow, m: string): string;
}

function line(name: string, labels: string, value: string): string {
  return `${name}{${labels}} ${value}\n`;
}

function label(name: string, value: string | null): string {
  return `${name}="${value === null ? '' : escapeLabelValue(value)}"`;
}

export const MIRROR_FAMILIES: readonly MirrorFamily[] = [
  {
    name: 'peerdb_mirror_status',
    type: 'gauge',
    help: 'Current status of the mirror as a state set: 1 for the current status, 0 for each of the other 11.',
    samples: (row, m) =>
      STATUSES.map((s) => line('peerdb_mirror_status', `${m},status="${s}"`, s === row.status ? '1' : '0')).join(''),
  },
  {
    name: 'peerdb_mirror_info',
    type: 'gauge',
    help: 'Always 1: the mirror\'s flow type, source and destination peers and workflow id ("" when unknown).',
    samples: (row, m) =>
      line(
        'peerdb_mirror_info',
        `${m},${label('flow_type', row.flow_type)},${label('source', row.source_peer)},` +
          `${label('destination', row.destination_peer)},${label('workflow_id', row.workflow_id)}`,
        '1',
      ),
  },
  {
    name: 'peerdb_mirror_status_since_timestamp_seconds',
    type: 'gauge',
    help: 'When the mirror entered its current status (observedAt of that transition), in Unix seconds.',
    samples: (row, m) => line('peerdb_mirror_status_since_timestamp_seconds', m, epoch(row.status_since)),
  },
  {
    name: 'peerdb_mirror_last_update_timestamp_seconds',
    type: 'gauge',
    help: 'observedAt of the newest applied update of the mirror, in Unix seconds.',
    samples: (row, m) => line('peerdb_mirror_last_update_timestamp_seconds', m, epoch(row.observed_at)),
  },
  {
    name: 'peerdb_mirror_status_transitions_total',
    type: 'counter',
    help: 'Status transitions recorded for the mirror.',
    samples: (row, m) => line('peerdb_mirror_status_transitions_total', m, row.transitions_total),
  },
  {
    name: 'peerdb_mirror_rows_synced_total',
    type: 'counter',
    help: 'Rows synced by the mirror, as last reported by its workers (only mirrors that reported it).',
    samples: (row, m) => (row.rows_synced === null ? '' : line('peerdb_mirror_rows_synced_total', m, row.rows_synced)),
  },
  {
    name: 'peerdb_mirror_lag_seconds',
    type: 'gauge',
    help: 'Replication lag of the mirror, as last reported by its workers (only mirrors that reported it).',
    samples: (row, m) => (row.lag_seconds === null ? '' : line('peerdb_mirror_lag_seconds', m, formatValue(row.lag_seconds))),
  },
  {
    name: 'peerdb_mirror_slot_lag_bytes',
    type: 'gauge',
    help: 'WAL bytes the source replication slot of the mirror holds back, as last reported (only mirrors that reported it).',
    samples: (row, m) => (row.slot_lag_bytes === null ? '' : line('peerdb_mirror_slot_lag_bytes', m, row.slot_lag_bytes)),
  },
  {
    name: 'peerdb_mirror_error',
    type: 'gauge',
    help: '1 while the mirror\'s current state carries an error, labelled with its class; absent otherwise.',
    samples: (row, m) => (row.error_class === null ? '' : line('peerdb_mirror_error', `${m},${label('class', row.error_class)}`, '1')),
  },
];

/**
 * PostgreSQL's `extract(epoch …)` as text keeps all six fraction digits (`1763719200.120000`);
 * trailing zeros go, the microseconds stay.
 */
export function epoch(text: string): string {
  if (!text.includes('.')) return text;
  let end = text.length;
  while (text.charCodeAt(end - 1) === 48 /* 0 */) end--;
  if (text.charCodeAt(end - 1) === 46 /* . */) end--;
  return text.slice(0, end);
}

/** One mirror's text, one UTF-8 buffer per family of MIRROR_FAMILIES, in that order. */
export type MirrorText = readonly Buffer[];

/**
 * Buffers rather than strings: a scrape joins them with Buffer.concat, a memcpy, where joining
 * 80,000 strings would flatten and then UTF-8-encode 12 MB on every scrape.
 */
export function renderMirror(row: MirrorRow): MirrorText {
  const m = `mirror="${escapeLabelValue(row.mirror)}"`;
  return MIRROR_FAMILIES.map((family) => Buffer.from(family.samples(row, m), 'utf8'));
}

interface CacheEntry {
  version: string;
  text: MirrorText;
  /** The last snapshot that listed the mirror. */
  generation: number;
}

/** Rendered text by mirror, reused while the mirror's row version stays the same. */
export class MirrorTextCache {
  private readonly entries = new Map<string, CacheEntry>();
  private generation = 0;

  /** Mirrors whose cached text is missing or was rendered from another row version. */
  stale(versions: readonly MirrorVersion[]): string[] {
    const stale: string[] = [];
    for (const v of versions) if (this.entries.get(v.mirror)?.version !== v.version) stale.push(v.mirror);
    return stale;
  }

  /** Renders `rows` (the stale mirrors' current rows) into the cache. */
  render(rows: readonly MirrorRow[]): void {
    for (const row of rows) this.entries.set(row.mirror, { version: row.version, text: renderMirror(row), generation: -1 });
  }

  /**
   * The snapshot's text in `versions` order. Mirrors not in it (dropped, gone) leave the cache.
   * A mirror without a matching entry (its row cannot change between two reads of one snapshot,
   * so this does not happen) is left out rather than served stale.
   */
  snapshot(versions: readonly MirrorVersion[]): MirrorText[] {
    const generation = ++this.generation;
    const texts: MirrorText[] = [];
    for (const { mirror, version } of versions) {
      const entry = this.entries.get(mirror);
      if (entry === undefined || entry.version !== version) continue;
      entry.generation = generation;
      texts.push(entry.text);
    }
    // Sweeping costs a pass over the cache, so only when some mirror left the snapshot.
    if (this.entries.size > texts.length) {
      for (const [mirror, entry] of this.entries) if (entry.generation !== generation) this.entries.delete(mirror);
    }
    return texts;
  }

  get size(): number {
    return this.entries.size;
  }
}
