/**
 * The per-mirror families, declared once: name, type, help and labels side by side, with the short
 * pure function that prints one mirror's samples (kube-state-metrics style). A mirror's text is
 * rendered once per row version and cached (textCache.ts); a scrape only streams it. docs/metrics.md
 * describes each family.
 */
import { STATUSES, WAL_STATUSES } from '../update.js';
import { escapeLabelValue, type Family, formatValue } from './exposition.js';
import { type MirrorRow, type RowColumn, type TableSample, tableSampleIndex } from './readMirrorRows.js';

export interface MirrorFamily extends Family {
  /** The labels of its samples, in the order they are printed. */
  readonly labels: readonly string[];
  /** This mirror's sample lines of the family, each ending in a line feed; `m` is `mirror="…"`, escaped. */
  samples(row: MirrorRow, m: string): string;
  /** The row's values it prints (readMirrorRows.ts reads only those of the families served). */
  readonly reads: readonly RowColumn[];
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
    reads: ['status'],
    type: 'gauge',
    labels: ['mirror', 'status'],
    help: 'Current status of the mirror as a state set: 1 for the current status, 0 for each of the other 11.',
    samples: (row, m) =>
      STATUSES.map((s) => line('peerdb_mirror_status', `${m},status="${s}"`, s === row.status ? '1' : '0')).join(''),
  },
  {
    name: 'peerdb_mirror_info',
    reads: ['flow_type', 'source_peer', 'destination_peer', 'workflow_id'],
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
    reads: ['status_since'],
    type: 'gauge',
    labels: ['mirror'],
    help: 'When the mirror entered its current status (observedAt of that transition), in Unix seconds.',
    samples: (row, m) => line('peerdb_mirror_status_since_timestamp_seconds', m, epoch(row.status_since)),
  },
  {
    name: 'peerdb_mirror_last_update_timestamp_seconds',
    reads: ['observed_at'],
    type: 'gauge',
    labels: ['mirror'],
    help: 'observedAt of the newest applied update of the mirror, in Unix seconds.',
    samples: (row, m) => line('peerdb_mirror_last_update_timestamp_seconds', m, epoch(row.observed_at)),
  },
  {
    name: 'peerdb_mirror_status_transitions_total',
    reads: ['transitions_total'],
    type: 'counter',
    labels: ['mirror'],
    help: 'Status transitions recorded for the mirror.',
    samples: (row, m) => line('peerdb_mirror_status_transitions_total', m, row.transitions_total),
  },
  {
    name: 'peerdb_mirror_rows_synced_total',
    reads: ['rows_synced'],
    type: 'counter',
    labels: ['mirror'],
    help: 'Rows synced by the mirror, as last reported by its workers (only mirrors that reported it).',
    samples: (row, m) => (row.rows_synced === null ? '' : line('peerdb_mirror_rows_synced_total', m, row.rows_synced)),
  },
  {
    name: 'peerdb_mirror_lag_seconds',
    reads: ['lag_seconds'],
    type: 'gauge',
    labels: ['mirror'],
    help: 'Replication lag of the mirror, as last reported by its workers (only mirrors that reported it).',
    samples: (row, m) => (row.lag_seconds === null ? '' : line('peerdb_mirror_lag_seconds', m, formatValue(row.lag_seconds))),
  },
  {
    name: 'peerdb_mirror_slot_lag_bytes',
    reads: ['slot_lag_bytes'],
    type: 'gauge',
    labels: ['mirror'],
    help: 'WAL bytes the source replication slot of the mirror holds back, as last reported (only mirrors that reported it).',
    samples: (row, m) => (row.slot_lag_bytes === null ? '' : line('peerdb_mirror_slot_lag_bytes', m, row.slot_lag_bytes)),
  },
  {
    name: 'peerdb_mirror_slot_lag_sample_timestamp_seconds',
    reads: ['slot_lag_sampled_at'],
    type: 'gauge',
    labels: ['mirror'],
    help: 'When the reported slot lag was measured, in Unix seconds (only mirrors that reported it).',
    samples: (row, m) =>
      row.slot_lag_sampled_at === null ? '' : line('peerdb_mirror_slot_lag_sample_timestamp_seconds', m, epoch(row.slot_lag_sampled_at)),
  },
  {
    name: 'peerdb_mirror_slot_wal_status',
    reads: ['slot_wal_status'],
    type: 'gauge',
    labels: ['mirror', 'wal_status'],
    help: 'WAL status of the mirror\'s source replication slot as a state set: 1 for the reported one, 0 for each of the other 3 (only mirrors that reported it).',
    samples: (row, m) =>
      row.slot_wal_status === null
        ? ''
        : WAL_STATUSES.map((w) => line('peerdb_mirror_slot_wal_status', `${m},wal_status="${w}"`, w === row.slot_wal_status ? '1' : '0')).join(''),
  },
  {
    name: 'peerdb_mirror_error',
    reads: ['error_class'],
    type: 'gauge',
    labels: ['mirror', 'class'],
    help: '1 while the mirror\'s current state carries an error, labelled with its class; absent otherwise.',
    samples: (row, m) => (row.error_class === null ? '' : line('peerdb_mirror_error', `${m},${label('class', row.error_class)}`, '1')),
  },
  {
    name: 'peerdb_mirror_tables',
    reads: ['table_count'],
    type: 'gauge',
    labels: ['mirror'],
    help: 'Tables the mirror last reported (only mirrors that reported tables).',
    samples: (row, m) => (row.table_count === null ? '' : line('peerdb_mirror_tables', m, row.table_count)),
  },
  tableFamily('peerdb_mirror_table_rows_synced_total', 'counter', 'Rows synced into the table, as last reported (only tables that reported it).', 'rows_synced'),
  tableFamily('peerdb_mirror_table_last_synced_timestamp_seconds', 'gauge', 'When the table last synced, in Unix seconds, as last reported (only tables that reported it).', 'last_synced_at'),
  tableFamily('peerdb_mirror_table_snapshot_partitions', 'gauge', 'Partitions of the table\'s initial load (only tables that reported it).', 'snapshot_partitions'),
  tableFamily('peerdb_mirror_table_snapshot_partitions_synced', 'gauge', 'Partitions of the table\'s initial load synced so far (only tables that reported it).', 'snapshot_partitions_synced'),
  tableFamily('peerdb_mirror_table_snapshot_rows_synced', 'gauge', 'Rows the table\'s initial load synced so far (only tables that reported it).', 'snapshot_rows_synced'),
  {
    name: 'peerdb_mirror_table_error',
    reads: ['tables'],
    type: 'gauge',
    labels: ['mirror', 'table', 'class'],
    help: '1 while the table\'s last report carries an error, labelled with its class; absent otherwise.',
    samples: (row, m) =>
      eachTable(row, (t) => {
        const errorClass = t[ERROR_CLASS];
        return errorClass === null || errorClass === undefined ? '' : line('peerdb_mirror_table_error', `${m},${tableLabel(t)},${label('class', errorClass)}`, '1');
      }),
  },
];

/** Where a TableSample holds the table's error class. */
const ERROR_CLASS = tableSampleIndex('error_class');

function tableLabel(t: TableSample): string {
  return label('table', t[0]);
}

function eachTable(row: MirrorRow, sample: (t: TableSample) => string): string {
  if (row.tables === null) return '';
  let text = '';
  for (const t of row.tables) text += sample(t);
  return text;
}

/** A per-table family of one value, the table's `column` (catalog/tableFields.ts); timestamps end in `_timestamp_seconds`. */
function tableFamily(name: string, type: 'gauge' | 'counter', help: string, column: string): MirrorFamily {
  const time = name.endsWith('_timestamp_seconds');
  const at = tableSampleIndex(column);
  return {
    name, type, help,
    labels: ['mirror', 'table'],
    reads: ['tables'],
    samples: (row, m) =>
      eachTable(row, (t) => {
        const value = t[at];
        return value === null || value === undefined ? '' : line(name, `${m},${tableLabel(t)}`, time ? epoch(value) : value);
      }),
  };
}

/** The per-table families (their data is the mirror's `tables`). */
export const TABLE_FAMILY_NAMES: readonly string[] = [
  'peerdb_mirror_table_rows_synced_total', 'peerdb_mirror_table_last_synced_timestamp_seconds', 'peerdb_mirror_table_snapshot_partitions',
  'peerdb_mirror_table_snapshot_partitions_synced', 'peerdb_mirror_table_snapshot_rows_synced', 'peerdb_mirror_table_error',
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

/** One mirror's sample lines, one string per family of `families`, in that order. */
export function renderMirror(row: MirrorRow, families: readonly MirrorFamily[] = MIRROR_FAMILIES): string[] {
  const m = `mirror="${escapeLabelValue(row.mirror)}"`;
  return families.map((family) => family.samples(row, m));
}

/**
 * The families served under an allow list or a deny list (at most one of them; the config refuses
 * both): each expression is matched against a whole family name, as kube-state-metrics does. A
 * family left out is neither read from the catalog nor rendered.
 */
export function selectFamilies(allow: readonly RegExp[] | undefined, deny: readonly RegExp[] | undefined): readonly MirrorFamily[] {
  if (allow === undefined && deny === undefined) return MIRROR_FAMILIES;
  return MIRROR_FAMILIES.filter((f) =>
    allow !== undefined ? allow.some((r) => r.test(f.name)) : !deny!.some((r) => r.test(f.name)));
}
