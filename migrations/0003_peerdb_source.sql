-- The PeerDB source's memory (CONTRACT §8): what it last published per PeerDB mirror. It is what
-- lets a poll publish only changes, publish drops that happened while no daemon ran, and lets a new
-- leader (or a restarted daemon) carry on without publishing the whole fleet again. When the queue
-- shares this database, a row is written in the same transaction as the pg-boss jobs it describes.
create table peerdb_published (
  mirror text primary key,
  status text not null,
  workflow_id text,
  flow_type text,
  source_peer text,
  destination_peer text,
  error_class text,
  error_message text,
  rows_synced bigint,
  lag_seconds double precision,
  slot_lag_bytes bigint,
  numbers_at timestamptz not null,
  observed_at timestamptz not null,
  seq bigint not null,
  dropped boolean not null,
  published_at timestamptz not null default now()
);
