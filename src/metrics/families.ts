/**
 * The per-mirror families, declared once: name, type, help and labels side by side, with the short
 * pure function that prints one mirror's samples (kube-state-metrics style). A mirror's text is
 * rendered once per row version and cached (textCache.ts); a scrape only streams it. docs/metrics.md
 * describes each family.
 */
import { STATUSES } from '../update.js';
import { escapeLabelValue, type Family, formatValue } from './exposition.js';
import type { MirrorRow } from './readMirrorRows.js';

export interface MirrorFamily extends Family {
  /** The labels of its samples, in the order they are printed. */
  readonly labels: readonly string[];
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
    labels: ['mirror', 'status'],
    help: 'Current status of the mirror as a state set: 1 for the current status, 0 for each of the other 11.',
    samples: (row, m) =>
      STATUSES.map((s) => line('peerdb_mirror_status', `${m},status="${s}"`, s === row.status ? '1' : '0')).join(''),
  },
  {
    name: 'peerdb_mirror_info',
    type: 'gauge',
    labels: ['mirror', 'flow_type', 'source', 'destination', 'workflow_id'],
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
    labels: ['mirror'],
    help: 'When the mirror entered its current status (observedAt of that transition), in Unix seconds.',
    samples: (row, m) => line('peerdb_mirror_status_since_timestamp_seconds', m, epoch(row.status_since)),
  },
  {
    name: 'peerdb_mirror_last_update_timestamp_seconds',
    type: 'gauge',
    labels: ['mirror'],
    help: 'observedAt of the newest applied update of the mirror, in Unix seconds.',
    samples: (row, m) => line('peerdb_mirror_last_update_timestamp_seconds', m, epoch(row.observed_at)),
  },
  {
    name: 'peerdb_mirror_status_transitions_total',
    type: 'counter',
    labels: ['mirror'],
    help: 'Status transitions recorded for the mirror.',
    samples: (row, m) => line('peerdb_mirror_status_transitions_total', m, row.transitions_total),
  },
  {
    name: 'peerdb_mirror_rows_synced_total',
    type: 'counter',
    labels: ['mirror'],
    help: 'Rows synced by the mirror, as last reported by its workers (only mirrors that reported it).',
    samples: (row, m) => (row.rows_synced === null ? '' : line('peerdb_mirror_rows_synced_total', m, row.rows_synced)),
  },
  {
    name: 'peerdb_mirror_lag_seconds',
    type: 'gauge',
    labels: ['mirror'],
    help: 'Replication lag of the mirror, as last reported by its workers (only mirrors that reported it).',
    samples: (row, m) => (row.lag_seconds === null ? '' : line('peerdb_mirror_lag_seconds', m, formatValue(row.lag_seconds))),
  },
  {
    name: 'peerdb_mirror_slot_lag_bytes',
    type: 'gauge',
    labels: ['mirror'],
    help: 'WAL bytes the source replication slot of the mirror holds back, as last reported (only mirrors that reported it).',
    samples: (row, m) => (row.slot_lag_bytes === null ? '' : line('peerdb_mirror_slot_lag_bytes', m, row.slot_lag_bytes)),
  },
  {
    name: 'peerdb_mirror_error',
    type: 'gauge',
    labels: ['mirror', 'class'],
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

/** One mirror's sample lines, one string per family of MIRROR_FAMILIES, in that order. */
export function renderMirror(row: MirrorRow): string[] {
  const m = `mirror="${escapeLabelValue(row.mirror)}"`;
  return MIRROR_FAMILIES.map((family) => family.samples(row, m));
}
