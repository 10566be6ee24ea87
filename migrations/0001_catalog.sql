-- The catalog: current state per mirror, transition history, bounded journal of raw updates.
-- Runs with search_path set to the catalog schema, so names are unqualified.
--
-- Invariant (kept by every writer in the same transaction as its journal change):
--   mirrors.journal_length    = count(*)           of the mirror's journal rows
--   mirrors.journal_oldest_at = min(observed_at)   of the mirror's journal rows
--
-- Lock protocol (no deadlocks): every catalog writer, the batch writer and the trimmer alike,
-- locks the mirrors rows it will touch, in mirror order, before it touches journal or
-- transitions rows of those mirrors.

create table mirrors (
  mirror            text primary key,
  status            text not null,
  status_since      timestamptz not null,
  observed_at       timestamptz not null,
  seq               bigint not null,
  workflow_id       text,
  run_id            text,
  flow_type         text,
  source_peer       text,
  destination_peer  text,
  rows_synced       bigint,
  lag_seconds       double precision,
  error_class       text,
  error_message     text,
  dropped_at        timestamptz,
  transitions_total bigint not null default 0,
  journal_length    integer not null default 0,
  journal_oldest_at timestamptz,
  created_at        timestamptz not null default now(),
  updated_at        timestamptz not null default now(),
  constraint mirrors_status_check check (status in (
    'unknown', 'running', 'paused', 'pausing', 'setup', 'snapshot', 'terminating',
    'terminated', 'completed', 'resync', 'failed', 'modifying')),
  constraint mirrors_journal_length_check check (journal_length >= 0)
);

create table transitions (
  id            bigint generated always as identity primary key,
  mirror        text not null,
  from_status   text,
  to_status     text not null,
  at            timestamptz not null,
  seq           bigint not null,
  workflow_id   text,
  error_class   text,
  error_message text,
  recorded_at   timestamptz not null default now()
);
-- Newest-first pages per mirror, and retention by age.
create index transitions_mirror_id_idx on transitions (mirror, id desc);
create index transitions_at_idx on transitions (at);

create table journal (
  id          bigint generated always as identity primary key,
  mirror      text not null,
  observed_at timestamptz not null,
  seq         bigint not null,
  status      text not null,
  applied     boolean not null,
  payload     jsonb not null,
  recorded_at timestamptz not null default now(),
  -- The idempotency key; also serves newest-first reads and per-mirror count trimming.
  constraint journal_idempotency_key unique (mirror, observed_at, seq)
);
-- Retention by age walks the oldest rows first.
create index journal_observed_at_idx on journal (observed_at);
