/**
 * The source's memory in mirrorstate's own catalog (`<schema>.peerdb_published`, migration 0003):
 * what it last published per PeerDB mirror. Read at the start of every poll, written with the
 * publish (in the same transaction when the queue shares the catalog database).
 */
import { type Executor, quoteIdent, UTC_MICROS } from '../../catalog/sql.js';
import type { Status } from '../../update.js';
import type { PublishedState } from './decide.js';

const table = (schema: string) => `${quoteIdent(schema)}.peerdb_published`;

export async function readPublished(db: Executor, schema: string): Promise<Map<string, PublishedState>> {
  const { rows } = await db.executeSql(
    `select mirror, status, workflow_id as "workflowId", flow_type as "flowType", source_peer as source,
            destination_peer as destination, error_class as "errorClass", error_message as "errorMessage",
            rows_synced::float8 as "rowsSynced", lag_seconds as "lagSeconds", slot_lag_bytes::float8 as "slotLagBytes",
            ${UTC_MICROS('slot_lag_sampled_at')} as "slotLagSampledAt", slot_wal_status as "slotWalStatus",
            ${UTC_MICROS('entered_at')} as "enteredAt", tables_digest as "tablesDigest",
            ${UTC_MICROS('numbers_at')} as "numbersAt", ${UTC_MICROS('observed_at')} as "observedAt",
            seq::float8 as seq, dropped
       from ${table(schema)}`,
  );
  return new Map((rows as (PublishedState & { status: Status })[]).map((r) => [r.mirror, r]));
}

export async function recordPublished(db: Executor, schema: string, states: readonly PublishedState[]): Promise<void> {
  if (states.length === 0) return;
  const col = <K extends keyof PublishedState>(k: K) => states.map((s) => s[k]);
  await db.executeSql(
    `insert into ${table(schema)} as p (mirror, status, workflow_id, flow_type, source_peer, destination_peer, error_class,
       error_message, rows_synced, lag_seconds, slot_lag_bytes, numbers_at, observed_at, seq, dropped, slot_lag_sampled_at, slot_wal_status, entered_at,
       tables_digest)
     select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
       $9::bigint[], $10::float8[], $11::bigint[], $12::timestamptz[], $13::timestamptz[], $14::bigint[], $15::boolean[],
       $16::timestamptz[], $17::text[], $18::timestamptz[], $19::text[])
     on conflict (mirror) do update set
       status = excluded.status, workflow_id = excluded.workflow_id, flow_type = excluded.flow_type,
       source_peer = excluded.source_peer, destination_peer = excluded.destination_peer,
       error_class = excluded.error_class, error_message = excluded.error_message, rows_synced = excluded.rows_synced,
       lag_seconds = excluded.lag_seconds, slot_lag_bytes = excluded.slot_lag_bytes, numbers_at = excluded.numbers_at,
       observed_at = excluded.observed_at, seq = excluded.seq, dropped = excluded.dropped,
       slot_lag_sampled_at = excluded.slot_lag_sampled_at, slot_wal_status = excluded.slot_wal_status,
       entered_at = excluded.entered_at, tables_digest = excluded.tables_digest, published_at = now()`,
    [
      col('mirror'), col('status'), col('workflowId'), col('flowType'), col('source'), col('destination'), col('errorClass'),
      col('errorMessage'), col('rowsSynced'), col('lagSeconds'), col('slotLagBytes'), col('numbersAt'), col('observedAt'),
      col('seq'), col('dropped'), col('slotLagSampledAt'), col('slotWalStatus'), col('enteredAt'), col('tablesDigest'),
    ],
  );
}
