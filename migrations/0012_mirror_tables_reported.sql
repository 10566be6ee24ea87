-- Whether a mirror has reported `tables` (docs/tables.md): `"tables": []` says it has none, which
-- /metrics shows as peerdb_mirror_tables 0, while a mirror that never reported tables has no such
-- series (docs/metrics.md). The tables alone cannot tell the two apart. A constant default: adding
-- the column rewrites nothing. Mirrors with tables reported them; one whose last list was empty
-- before this migration cannot be told from one that never reported, until it reports again.
alter table mirrors add column tables_reported boolean not null default false;
update mirrors as m set tables_reported = true where exists (select from mirror_tables as t where t.mirror = m.mirror);
