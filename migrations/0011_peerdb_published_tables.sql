-- The fingerprint of the tables the PeerDB source last published for a mirror (docs/peerdb.md,
-- Tables): a table's figures are published when they change, also after a restart or a change of
-- leader, and never again when they have not. Nullable, no default: adding it rewrites nothing.
alter table peerdb_published add column tables_digest text;
