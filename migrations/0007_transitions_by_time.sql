-- Transitions by time: the status timelines of the status page and the catalog dashboard for
-- Grafana (grafana/dashboards/mirrorstate-catalog.json) read a window of history, never the whole.
--
-- (mirror, at, seq), carrying to_status: one mirror's transitions in a window in version order, and
-- its status at the window's start (the newest transition at or before it, a backward walk of one
-- entry), both as index-only scans. The fleet page asks for 500 mirrors at once (`mirror = any`).
create index transitions_mirror_at_idx on transitions (mirror, at, seq) include (to_status);

-- (at), carrying mirror and to_status: what happened across the fleet in a window (transitions per
-- day, the mirrors that changed most often) without visiting the table. It replaces the plain (at)
-- index of 0001, whose one other use, retention by age, walks the same leading column.
create index transitions_at_mirror_idx on transitions (at) include (mirror, to_status);
drop index transitions_at_idx;
