/**
 * The reference model of docs/message.md's rules (Ordering, Idempotency, Applying an update),
 * computed in the test independently of the daemon, plus a seeded generator of update streams
 * and the checks that compare a catalog with the model.
 */
import { expect } from 'vitest';
import type pg from 'pg';
import { parseTimestamp, STATUSES } from '../../src/update.js';

export interface ModelUpdate {
  mirror: string;
  status: string | number;
  observedAt: string;
  seq?: number;
  workflowId?: string | null;
  rowsSynced?: number | null;
  lagSeconds?: number | null;
  slotLagBytes?: number | null;
  flowType?: string | null;
  error?: { message: string; class?: string } | null;
  dropped?: boolean;
  [extra: string]: unknown;
}

/** Mulberry32: small, fast, good enough to shuffle test streams reproducibly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const canonical = (observedAt: string): string => {
  const parsed = parseTimestamp(observedAt);
  if (!parsed.ok) throw new Error(`bad timestamp in test stream: ${observedAt}`);
  return parsed.canonical;
};

export const keyOf = (u: ModelUpdate): string => `${u.mirror}|${canonical(u.observedAt)}|${u.seq ?? 0}`;

function statusName(status: string | number): string {
  if (typeof status === 'number') return STATUSES[status] as string;
  return status.replace(/^STATUS_/, '').toLowerCase();
}

export function compare(a: ModelUpdate, b: ModelUpdate): number {
  const x = canonical(a.observedAt);
  const y = canonical(b.observedAt);
  if (x !== y) return x < y ? -1 : 1;
  return (a.seq ?? 0) - (b.seq ?? 0);
}

/**
 * A stream for `mirrors` mirrors with `versions` distinct versions each: microsecond timestamps
 * with deliberate ties broken by seq, every status spelling, optional fields that come and go.
 */
export function generateUpdates(seed: number, mirrors: number, versions: number): ModelUpdate[] {
  const random = rng(seed);
  const names = Array.from({ length: mirrors }, (_, i) =>
    i % 7 === 3 ? `mirror "${i}" \\ ünïcødé 🚀` : i % 5 === 1 ? `Mirror With Spaces ${i}` : `mirror_${seed}_${i}`,
  );
  // A few hours back from now, on the hour: inside any retention, never in the future.
  const base = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3 * 3_600_000;
  const statuses = ['running', 'paused', 'failed', 'snapshot', 'setup'];
  const out: ModelUpdate[] = [];
  for (const mirror of names) {
    const seen = new Set<string>();
    while (seen.size < versions) {
      // Few distinct instants so that ties on observedAt (broken by seq) are common.
      const micros = Math.floor(random() * versions * 2) * 1_000_017 + Math.floor(random() * 1000);
      const ms = base + Math.floor(micros / 1000);
      const frac = String(micros % 1_000_000).padStart(6, '0');
      const iso = new Date(ms).toISOString().slice(0, 19);
      const seq = Math.floor(random() * 3);
      const form = Math.floor(random() * 3);
      // The same instant written in UTC or with an offset, and at nanoseconds: one version.
      const observedAt =
        form === 0 ? `${iso}.${frac}Z` : form === 1 ? `${iso}.${frac}123Z` : shiftToOffset(`${iso}.${frac}Z`);
      const key = `${canonical(observedAt)}|${seq}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const status = statuses[Math.floor(random() * statuses.length)] as string;
      const spelled = [status, status.toUpperCase(), `STATUS_${status.toUpperCase()}`, STATUSES.indexOf(status as never)][
        Math.floor(random() * 4)
      ] as string | number;
      const u: ModelUpdate = { mirror, status: spelled, observedAt, seq, traceId: `t${out.length}` };
      if (random() < 0.5) u.rowsSynced = Math.floor(random() * 1e9);
      if (random() < 0.3) u.lagSeconds = Math.round(random() * 1e4) / 100;
      if (random() < 0.3) u.slotLagBytes = Math.floor(random() * 2 ** 40);
      if (random() < 0.3) u.workflowId = `wf-${Math.floor(random() * 5)}`;
      if (random() < 0.2) u.flowType = 'cdc';
      if (status === 'failed' && random() < 0.8) u.error = { message: `boom "${out.length}"`, class: 'slot_lost' };
      if (random() < 0.05) u.dropped = true;
      out.push(u);
    }
  }
  return out;
}

function shiftToOffset(utc: string): string {
  // Same instant, written at +05:30.
  const [whole, frac] = utc.replace('Z', '').split('.');
  const d = new Date(`${whole}Z`);
  const local = new Date(d.getTime() + 330 * 60_000).toISOString().slice(0, 19);
  return `${local}.${frac}+05:30`;
}

export interface ModelMirror {
  status: string;
  observedAt: string;
  seq: number;
  statusSince: string;
  workflowId: string | null;
  rowsSynced: number | null;
  lagSeconds: number | null;
  slotLagBytes: number | null;
  flowType: string | null;
  errorClass: string | null;
  errorMessage: string | null;
  dropped: boolean;
  /** The transitions the contract asks for when the updates arrive in version order. */
  transitions: { from: string | null; to: string; at: string; seq: number }[];
}

/** Applies the distinct updates one by one in version order: the contract's reference result. */
export function model(updates: ModelUpdate[]): Map<string, ModelMirror> {
  const distinct = new Map(updates.map((u) => [keyOf(u), u]));
  const sorted = [...distinct.values()].sort(compare);
  const mirrors = new Map<string, ModelMirror>();
  for (const u of sorted) {
    const prev = mirrors.get(u.mirror);
    const status = statusName(u.status);
    const at = canonical(u.observedAt);
    const changed = !prev || prev.status !== status;
    const next: ModelMirror = {
      status,
      observedAt: at,
      seq: u.seq ?? 0,
      statusSince: changed ? at : (prev as ModelMirror).statusSince,
      workflowId: u.workflowId ?? prev?.workflowId ?? null,
      rowsSynced: u.rowsSynced ?? prev?.rowsSynced ?? null,
      lagSeconds: u.lagSeconds ?? prev?.lagSeconds ?? null,
      slotLagBytes: u.slotLagBytes ?? prev?.slotLagBytes ?? null,
      flowType: u.flowType ?? prev?.flowType ?? null,
      errorClass: u.error ? (u.error.class ?? 'unknown') : null,
      errorMessage: u.error ? u.error.message : null,
      dropped: u.dropped === true,
      transitions: [...(prev?.transitions ?? []), ...(changed ? [{ from: prev?.status ?? null, to: status, at, seq: u.seq ?? 0 }] : [])],
    };
    mirrors.set(u.mirror, next);
  }
  return mirrors;
}

const UTC = (col: string) => `to_char(${col} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * Compares the catalog in `schema` with the model:
 * - every mirror is at its highest version, with that version's own fields (status, error, dropped);
 * - the journal holds each idempotency key exactly once, and the journal invariant holds;
 * - the catalog equals, exactly (carried fields and transitions included), the model replayed over
 *   the updates the journal marks applied: those arrived in increasing version order by definition,
 *   so in a shuffled stream this is what "applied in version order" means;
 * - transition chains are unbroken, end in the current status and are counted in transitions_total;
 * - with `allApplied` (a stream published in version order), every update was applied, so the
 *   transitions are exactly the model's of the whole stream.
 */
export async function expectCatalogMatchesModel(
  pool: pg.Pool,
  updates: ModelUpdate[],
  options: { schema?: string; allApplied?: boolean } = {},
): Promise<void> {
  const schema = options.schema ?? 'mirrorstate';
  const full = model(updates);
  const { rows: mirrors } = await pool.query(
    `select mirror, status, ${UTC('observed_at')} as observed_at, seq, ${UTC('status_since')} as status_since, workflow_id,
            rows_synced, lag_seconds, slot_lag_bytes, flow_type, error_class, error_message, dropped_at is not null as dropped,
            transitions_total, journal_length, ${UTC('journal_oldest_at')} as journal_oldest_at
       from ${schema}.mirrors order by mirror`,
  );
  expect(mirrors.map((m) => m.mirror).sort()).toEqual([...full.keys()].sort());
  for (const row of mirrors) {
    const m = full.get(row.mirror) as ModelMirror;
    expect({ mirror: row.mirror, status: row.status, observedAt: row.observed_at, seq: Number(row.seq),
      errorClass: row.error_class, errorMessage: row.error_message, dropped: row.dropped }).toEqual({
      mirror: row.mirror, status: m.status, observedAt: m.observedAt, seq: m.seq,
      errorClass: m.errorClass, errorMessage: m.errorMessage, dropped: m.dropped,
    });
  }

  // The journal holds each idempotency key exactly once.
  const { rows: journal } = await pool.query(
    `select mirror, ${UTC('observed_at')} as observed_at, seq, applied from ${schema}.journal`,
  );
  const journalKeys = journal.map((j) => `${j.mirror}|${j.observed_at}|${j.seq}`);
  expect(new Set(journalKeys).size).toBe(journalKeys.length);
  expect(new Set(journalKeys)).toEqual(new Set(updates.map(keyOf)));

  // The journal invariant.
  const { rows: bad } = await pool.query(
    `select m.mirror from ${schema}.mirrors m
       left join (select mirror, count(*) as n, min(observed_at) as oldest from ${schema}.journal group by mirror) j using (mirror)
      where m.journal_length <> coalesce(j.n, 0) or m.journal_oldest_at is distinct from j.oldest`,
  );
  expect(bad).toEqual([]);

  // Exactly the model of the applied updates.
  const appliedKeys = new Set(journal.filter((j) => j.applied).map((j) => `${j.mirror}|${j.observed_at}|${j.seq}`));
  if (options.allApplied) expect(appliedKeys.size).toBe(new Set(updates.map(keyOf)).size);
  const replayed = model(updates.filter((u) => appliedKeys.has(keyOf(u))));
  const { rows: transitions } = await pool.query(
    `select mirror, from_status, to_status, ${UTC('at')} as at, seq from ${schema}.transitions order by mirror, id`,
  );
  const byMirror = new Map<string, typeof transitions>();
  for (const t of transitions) byMirror.set(t.mirror, [...(byMirror.get(t.mirror) ?? []), t]);
  for (const row of mirrors) {
    const m = replayed.get(row.mirror) as ModelMirror;
    expect({ mirror: row.mirror, status: row.status, observedAt: row.observed_at, seq: Number(row.seq), statusSince: row.status_since,
      workflowId: row.workflow_id, rowsSynced: row.rows_synced === null ? null : Number(row.rows_synced), lagSeconds: row.lag_seconds,
      slotLagBytes: row.slot_lag_bytes === null ? null : Number(row.slot_lag_bytes), flowType: row.flow_type, errorClass: row.error_class, errorMessage: row.error_message, dropped: row.dropped }).toEqual({
      mirror: row.mirror, status: m.status, observedAt: m.observedAt, seq: m.seq, statusSince: m.statusSince, workflowId: m.workflowId,
      rowsSynced: m.rowsSynced, lagSeconds: m.lagSeconds, slotLagBytes: m.slotLagBytes, flowType: m.flowType,
      errorClass: m.errorClass, errorMessage: m.errorMessage, dropped: m.dropped,
    });
    const chain = byMirror.get(row.mirror) ?? [];
    expect(chain.length, `transitions of ${row.mirror}`).toBeGreaterThan(0);
    expect(chain[0].from_status).toBeNull();
    for (let i = 1; i < chain.length; i++) expect(chain[i].from_status).toBe(chain[i - 1].to_status);
    expect(chain.at(-1).to_status).toBe(row.status);
    expect(Number(row.transitions_total)).toBe(chain.length);
    expect(chain.map((t) => ({ from: t.from_status, to: t.to_status, at: t.at, seq: Number(t.seq) }))).toEqual(m.transitions);
  }
}

/** Jobs of `queue` not yet settled (created, retry, active). */
export async function pendingJobs(pool: pg.Pool, queue = 'mirrorstate-updates', bossSchema = 'pgboss'): Promise<number> {
  const { rows } = await pool.query(
    `select count(*)::int as n from ${bossSchema}.job where name = $1 and state in ('created', 'retry', 'active')`,
    [queue],
  );
  return rows[0].n as number;
}

/** Packs a stream into job data: single-update jobs and `{updates:[…]}` jobs of random size. */
export function packJobs(updates: ModelUpdate[], random: () => number, maxPerJob = 40): object[] {
  const jobs: object[] = [];
  for (let i = 0; i < updates.length; ) {
    if (random() < 0.5) {
      jobs.push(updates[i] as object);
      i++;
    } else {
      const n = 1 + Math.floor(random() * maxPerJob);
      jobs.push({ updates: updates.slice(i, i + n) });
      i += n;
    }
  }
  return jobs;
}
