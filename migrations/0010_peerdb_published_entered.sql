-- When the PeerDB source last saw a mirror enter resync, setup or snapshot (flows.updated_at at the
-- status change, docs/peerdb.md): an error logged before it is never the mirror's current error, also
-- after a restart or a change of leader. Nullable, no default: adding it rewrites nothing.
alter table peerdb_published add column entered_at timestamptz;
