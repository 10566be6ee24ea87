-- Tables and the slot sample's age and WAL status (docs/tables.md, docs/message.md).
--
-- Nullable columns without defaults and a new table: catalog-only changes, instant on a catalog of
-- any size, and safe while the previous build's backlog still waits in the queue (its updates carry
-- none of these fields, and an update without them keeps what a mirror has).
alter table mirrors add column slot_lag_sampled_at timestamptz;
alter table mirrors add column slot_wal_status text;
alter table mirrors add constraint mirrors_slot_wal_status_check
  check (slot_wal_status in ('reserved', 'extended', 'unreserved', 'lost')) not valid;

-- The current tables of each mirror: the whole set of the newest applied update that listed
-- tables, written by the batch writer in the same transaction as the mirror's row (so a reader's
-- snapshot never pairs a mirror with another moment's tables). Every table of a mirror is in the
-- primary key's range for that mirror, which is how every reader and the writer's replacement find
-- them. A person deleting a mirror's row takes its tables with it.
create table mirror_tables (
  mirror text not null references mirrors (mirror) on delete cascade on update cascade,
  table_name text not null,
  rows_synced bigint check (rows_synced >= 0),
  last_synced_at timestamptz,
  snapshot_partitions bigint check (snapshot_partitions >= 0),
  snapshot_partitions_synced bigint check (snapshot_partitions_synced >= 0),
  snapshot_rows_synced bigint check (snapshot_rows_synced >= 0),
  snapshot_started_at timestamptz,
  snapshot_finished_at timestamptz,
  error_class text,
  error_message text,
  updated_at timestamptz not null default now(),
  primary key (mirror, table_name)
);

-- Keyset paging of GET /api/v1/mirrors walks names in byte order (collate "C"), as the unpaged list
-- answers; this index makes each page a range scan whatever the database's collation.
create index mirrors_mirror_c_idx on mirrors (mirror collate "C");
