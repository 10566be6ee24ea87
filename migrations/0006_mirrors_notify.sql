-- A notification for every statement that writes `mirrors`, for the /metrics cache
-- (src/metrics/watch.ts and snapshot.ts).
--
-- A scrape used to read the catalog's change feed every time, changed or not: a round trip and a
-- scan of every row's header, 2-3 ms of a 10,000-mirror scrape whose bytes alone take 6-7 ms to
-- send. Now the daemon LISTENs, re-reads the changed mirrors when told, and a scrape of an
-- unchanged catalog only checks the listening connection: PostgreSQL sends a listener every
-- notification of a transaction that committed before the listener's next query runs, so one
-- `select 1` proves nothing was written since the cache was read.
--
-- Statement level, so a batch costs one notification however many mirrors it wrote, and
-- PostgreSQL folds a transaction's identical notifications into one. The payload is the schema:
-- several catalogs can share a database, and each daemon listens on the same channel. Every
-- writer fires it, mirrorstate's batch writer and a person's UPDATE alike; removals are also
-- noted in mirror_removals (migration 0005) for the change feed.
create function notify_mirrors_changed() returns trigger
  language plpgsql
  as $$
begin
  perform pg_notify('mirrorstate_mirrors', tg_table_schema);
  return null;
end
$$;

create trigger mirrors_changed after insert or update or delete or truncate on mirrors
  for each statement execute function notify_mirrors_changed();
