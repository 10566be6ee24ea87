-- slotLagBytes (CONTRACT §2): WAL the source's replication slot holds back, last reported value.
-- A nullable column without a default is a catalog-only change, instant on a catalog of any size;
-- the check is NOT VALID because every existing row holds null, so there is nothing to scan for.
alter table mirrors add column slot_lag_bytes bigint;
alter table mirrors add constraint mirrors_slot_lag_bytes_check check (slot_lag_bytes >= 0) not valid;
