-- The PeerDB source's memory of the slot sample it last published (docs/peerdb.md): its time and the
-- slot's wal_status, so a restarted leader does not publish every CDC mirror again. Nullable columns
-- without defaults: adding them rewrites nothing.
alter table peerdb_published add column slot_lag_sampled_at timestamptz, add column slot_wal_status text;
