-- The catalog dashboard's two fleet-wide panels (docs/grafana.md) without counting every
-- transition of a long range: a per-day count the batch writer keeps with the transitions, and a
-- function that finds the mirrors that changed most often by looking at the likeliest first.

-- Transitions per UTC day across the fleet, one row per day and writing connection. A batch adds
-- its count to the row of its own backend (pg_backend_pid()), in the statement that inserts the
-- transitions (src/catalog/applyBatch.ts): a connection runs one transaction at a time, so two
-- concurrent batches never wait on the same row, and a day holds a row per connection that wrote
-- on it (a handful). The panel reads the range's whole days here and counts only the two days the
-- range cuts in `transitions`. Rows filled below from older transitions have backend 0.
create table transitions_per_day (
  day date not null,
  backend integer not null,
  transitions bigint not null check (transitions >= 0),
  primary key (day, backend)
);

-- The `how_many` mirrors with the most transitions in [range_from, range_to], ties by name, with
-- their first and last transition in it: the Flapping panel. No mirror can have more transitions
-- in a range than its transitions_total (trimming never lowers it), so the mirrors are visited by
-- transitions_total, highest first, each counted in the range with an index-only range of
-- transitions_mirror_at_idx, and the walk stops at the first whose transitions_total is below the
-- last of the best found: the rest cannot enter. Mirrors that flap have high totals, so that is a
-- few probes. When `probes` mirrors were visited without that proof (a fleet where every mirror
-- changes about as often), it counts the range's transitions instead, as one index range.
create function flapping(range_from timestamptz, range_to timestamptz, how_many integer default 20, probes integer default 500)
returns table (mirror text, transitions bigint, first timestamptz, last timestamptz)
language plpgsql stable
set search_path from current
as $$
#variable_conflict use_column
declare
  r record;
  n bigint;
  names text[] := '{}';
  counts bigint[] := '{}';
  visited integer := 0;
begin
  for r in select m.mirror, m.transitions_total from mirrors m where m.transitions_total > 0
            order by m.transitions_total desc, m.mirror limit probes + 1 loop
    exit when cardinality(counts) = how_many and r.transitions_total < counts[how_many];
    visited := visited + 1;
    if visited > probes then
      -- Planned for these bounds each time (EXECUTE): a short range reads transitions_at_mirror_idx,
      -- a long one streams transitions_mirror_at_idx, which a generic plan could not tell apart.
      return query execute
        'select t.mirror, count(*), min(t.at), max(t.at)
           from transitions t
          where t.at between $1 and $2
          group by t.mirror
          order by 2 desc, 1
          limit $3'
        using range_from, range_to, how_many;
      return;
    end if;
    select count(*) into n from transitions t where t.mirror = r.mirror and t.at between range_from and range_to;
    if n > 0 and (cardinality(counts) < how_many or n >= counts[how_many]) then
      select array_agg(b.m order by b.c desc, b.m), array_agg(b.c order by b.c desc, b.m) into names, counts
        from (select u.m, u.c from unnest(names || r.mirror, counts || n) as u(m, c) order by u.c desc, u.m limit how_many) as b;
    end if;
  end loop;
  return query
    select u.m, u.c,
           (select min(t.at) from transitions t where t.mirror = u.m and t.at between range_from and range_to),
           (select max(t.at) from transitions t where t.mirror = u.m and t.at between range_from and range_to)
      from unnest(names, counts) with ordinality as u(m, c, i)
     order by u.i;
end
$$;

-- Fill the per-day counts from the transitions already recorded, a month of them at a time (an
-- index-only range of transitions_at_mirror_idx each), logging progress: the migration runner
-- logs each notice.
do $$
declare
  first_day date;
  last_day date;
  d date;
  n bigint;
  done bigint := 0;
begin
  select (min(at) at time zone 'UTC')::date, (max(at) at time zone 'UTC')::date into first_day, last_day from transitions;
  d := first_day;
  while d <= last_day loop
    insert into transitions_per_day (day, backend, transitions)
    select (at at time zone 'UTC')::date, 0, count(*)
      from transitions
     where at >= d::timestamp at time zone 'UTC' and at < (d + 30)::timestamp at time zone 'UTC'
     group by 1;
    select coalesce(sum(transitions), 0) into n from transitions_per_day where day >= d and day < d + 30;
    done := done + n;
    raise notice 'transitions per day: % to %: % transitions (% so far)', d, least(d + 29, last_day), n, done;
    d := d + 30;
  end loop;
end
$$;
