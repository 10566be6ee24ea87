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
import type { MirrorRow } from './readMirrorRows.js';

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

/** One mirror's text, one string per family of MIRROR_FAMILIES, in that order. */
export type MirrorText = readonly string[];

export function renderMirror(row: MirrorRow): MirrorText {
  const m = `mirror="${escapeLabelValue(row.mirror)}"`;
  return MIRROR_FAMILIES.map((family) => family.samples(row, m));
}

interface CacheEntry {
  version: string;
  text: MirrorText;
}

/** Rendered text by mirror, reused while the mirror's row version stays the same. */
export class MirrorTextCache {
  private entries = new Map<string, CacheEntry>();
  private next = new Map<string, CacheEntry>();
  /** Mirrors rendered (not reused) since the last `beginSnapshot()`: for tests and logs. */
  rendered = 0;

  /** Starts collecting a snapshot; `text()` calls until `endSnapshot()` belong to it. */
  beginSnapshot(): void {
    this.next = new Map();
    this.rendered = 0;
  }

  text(row: MirrorRow): MirrorText {
    let entry = this.entries.get(row.mirror);
    if (entry === undefined || entry.version !== row.version) {
      entry = { version: row.version, text: renderMirror(row) };
      this.rendered++;
    }
    this.next.set(row.mirror, entry);
    return entry.text;
  }

  /** Mirrors not seen in this snapshot (dropped ones among them) are forgotten. */
  endSnapshot(): void {
    this.entries = this.next;
    this.next = new Map();
  }

  get size(): number {
    return this.entries.size;
  }
}
