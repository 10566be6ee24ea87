-- Metrics sharding (MIRRORSTATE_METRICS_SHARD=i/n, README "Sharding /metrics"): a mirror belongs to
-- shard `shard_hash % n`, where shard_hash is the first 4 bytes of SHA-256 of the UTF-8 name read as
-- an unsigned big-endian 32-bit integer. Stored, so a scrape filters on an integer instead of
-- hashing every name again (hashing 100,000 names costs about 100-200 ms per scrape on its own).
-- A generated column: every writer, present or future, gets it right without knowing about it.
-- Adding it rewrites the table once (a second or so for 100,000 mirrors), which also applies the
-- fillfactor set below to every page.
create function mirror_shard_hash(name text) returns bigint
  language sql immutable strict parallel safe
  -- convert_to is only "stable" because of encoding conversions in general; to UTF-8 it is a
  -- fixed function of the text, which is what makes declaring this immutable sound.
  return ('x' || encode(substring(sha256(convert_to(name, 'UTF8')) from 1 for 4), 'hex'))::bit(32)::bigint;

-- Room in each page for the row's next version: the batch writer updates every row it touches, and
-- an update that fits its page is HOT (no new primary-key entry, pruned in place). The rewrite
-- below applies it to every existing page.
alter table mirrors set (fillfactor = 50);

alter table mirrors add column shard_hash bigint not null generated always as (mirror_shard_hash(mirror)) stored;
