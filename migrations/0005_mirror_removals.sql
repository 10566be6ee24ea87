-- Rows that leave `mirrors`, for the /metrics change feed (src/metrics/readMirrorRows.ts).
--
-- The feed finds what changed since the previous scrape by the row versions' writers (xmin), so
-- it sees every row written, dropped ones included, but never a row that is gone. mirrorstate
-- itself never removes a row (a dropped mirror keeps its row, with dropped_at set); only a person
-- or a script does, by DELETE, TRUNCATE or renaming a mirror. Each such statement leaves one row
-- here, in its own transaction, and a scrape whose feed finds one written at or above its horizon
-- reads every mirror instead. Before, every scrape counted the live mirrors to notice a removal:
-- a scan that deformed every row to reach dropped_at and shard_hash (a third of the feed's
-- statement at 10,000 mirrors, and most of a shard's at 100,000).
--
-- Statement-level triggers: one row per statement however many rows it touched, and none of the
-- batch writer's statements fire them (it inserts and updates rows, never the `mirror` column).
-- Rows are never trimmed: a person removing mirrors writes a few, and the index keeps the feed's
-- probe cheap however many there are.
create table mirror_removals (
  xid xid8 not null default pg_current_xact_id(),
  at timestamptz not null default now()
);
create index mirror_removals_xid_idx on mirror_removals (xid);

-- The schema comes from the trigger's table: the catalog schema is configurable, and a trigger
-- runs with the search_path of whoever removed the rows.
create function note_mirror_removal() returns trigger
  language plpgsql
  as $$
begin
  execute format('insert into %I.mirror_removals default values', tg_table_schema);
  return null;
end
$$;

create trigger mirrors_deleted after delete on mirrors
  for each statement execute function note_mirror_removal();
create trigger mirrors_truncated after truncate on mirrors
  for each statement execute function note_mirror_removal();
-- A rename takes the old name away; the feed then sees only the new one.
create trigger mirrors_renamed after update of mirror on mirrors
  for each statement execute function note_mirror_removal();
