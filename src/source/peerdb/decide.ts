/**
 * What a poll publishes (docs/peerdb.md), decided purely from PeerDB's snapshot and what the source
 * published before (`PublishedState`, kept in the catalog so it survives restarts and leader changes):
 *
 * - a mirror the source never published (or published as dropped, now back): everything, now;
 * - a mirror whose status, error, peers, workflow, flow type or slot wal_status differs from what
 *   was published, or whose rowsSynced fell (a resync dropped its stats): now;
 * - a mirror whose numbers (rowsSynced, lagSeconds, slotLagBytes, slotLagSampledAt, its tables) alone differ:
 *   when the last numbers it published are at least the numbers interval old (PeerDB's clock;
 *   NUMBERS_INTERVAL_MS unless MIRRORSTATE_PEERDB_NUMBERS_INTERVAL says otherwise);
 * - a published mirror whose flows row is gone: once, `terminated` with `dropped: true`, whenever
 *   the poll notices (also a drop that happened while no daemon ran);
 * - nothing else. A status is compared by value, never by flows.updated_at, which PeerDB also
 *   moves on config and tag edits and same-status rewrites.
 *
 * Every update carries the whole picture (all fields), so the mirror's row never mixes fields of two
 * polls. Versions only grow per mirror: `observedAt` is PeerDB's clock at the poll, and should that
 * clock not have moved past the last published version (same microsecond, or set back), the update
 * keeps that observedAt and takes the next `seq`, so it is never stale against the source's own past.
 */
import type { UpdateInput } from '../../publish.js';
import { isWalStatus, parseUpdate, STATUSES, type Status, type WalStatus } from '../../update.js';
import { classifyError } from './classify.js';
import { type PeerdbSnapshot, slotOf } from './readPeerdb.js';
import { type ErrorRow, parentOf } from './rows.js';
import { digestOf, type MirrorTables } from './tables.js';

export { parentOf };

export const NUMBERS_INTERVAL_MS = 30_000;
const FAILED = STATUSES.indexOf('failed');
/** Entering one of these starts the mirror's errors afresh (docs/peerdb.md, Resync). */
const ENTRY_STATUSES: ReadonlySet<Status> = new Set(['resync', 'setup', 'snapshot']);

/** What the source last published for one mirror. */
export interface PublishedState {
  mirror: string;
  status: Status;
  workflowId: string | null;
  flowType: string | null;
  source: string | null;
  destination: string | null;
  errorClass: string | null;
  errorMessage: string | null;
  rowsSynced: number | null;
  lagSeconds: number | null;
  slotLagBytes: number | null;
  slotLagSampledAt: string | null;
  slotWalStatus: string | null;
  /** flows.updated_at when the source last saw the mirror enter resync, setup or snapshot. */
  enteredAt: string | null;
  /** The digest of the tables last published (tables.ts); null: none were. */
  tablesDigest: string | null;
  /** observedAt of the update that last published the numbers. */
  numbersAt: string;
  observedAt: string;
  seq: number;
  dropped: boolean;
}

/** One mirror as PeerDB shows it now, before validation. */
export interface Observation {
  mirror: string;
  statusCode: number;
  workflowId: string | null;
  flowType: 'cdc' | 'qrep' | 'xmin';
  source: string | null;
  destination: string | null;
  rowsSynced: number | null;
  lagSeconds: number | null;
  slotLagBytes: number | null;
  /** The slot sample's own time (RFC 3339 UTC): an old sample is published as old. */
  slotLagSampledAt: string | null;
  slotWalStatus: WalStatus | null;
  /** flows.updated_at: when PeerDB last set the status (or edited the flow). */
  statusSince: string;
  /** When the error was logged. */
  errorAt: string | null;
  error: { message: string; class: string } | null;
  /** A CDC mirror's tables (tables.ts); null: not known (a QRep mirror, or PeerDB lacks the stats). */
  tables: MirrorTables | null;
}

export type SkipReason = 'status' | 'name' | 'invalid';

export interface Decision {
  /** The updates to publish, each with the state to record once it is published. */
  publish: { update: UpdateInput; state: PublishedState }[];
  skipped: { mirror: string; reason: SkipReason; detail: string }[];
  seen: number;
  dropped: number;
}

function newest(a: ErrorRow | undefined, b: ErrorRow | undefined): ErrorRow | undefined {
  if (!a) return b;
  if (!b) return a;
  return b.at > a.at || (b.at === a.at && b.id > a.id) ? b : a;
}

/** PeerDB's rows → one observation per flow (docs/peerdb.md, Where each field comes from). Pure. */
/**
 * The sample's wal_status where it is one of PostgreSQL's states. PeerDB records `unknown` for a
 * source before PostgreSQL 13 and an empty string where the slot reported none (no restart_lsn):
 * neither is a state, and either would make the whole update invalid (docs/peerdb.md, "Where each field comes from").
 */
function knownWalStatus(value: string | null | undefined): WalStatus | null {
  return isWalStatus(value) ? value : null;
}

export function observe(snapshot: PeerdbSnapshot): Observation[] {
  const { flows, pendingLag, rows, tails, shape, tables } = snapshot;
  const names = tails.flows?.names ?? new Set(flows.map((f) => f.name));
  // The newest error per mirror, over its own flow name and its snapshot children's.
  const errors = new Map<string, ErrorRow>();
  for (const [flowName, row] of tails.errors) {
    const mirror = names.has(flowName) ? flowName : parentOf(flowName, names);
    if (mirror !== undefined) errors.set(mirror, newest(errors.get(mirror), row)!);
  }
  return flows.map((f) => {
    const synced = rows?.get(f.name);
    const lastSyncAt = synced?.lastSyncAt ?? null;
    const e = errors.get(f.name);
    // An error shows while it is newer than the mirror's last successful sync (PeerDB recovered
    // since otherwise), or while the mirror is failed; never one logged before this flow existed
    // (an earlier mirror of the same name).
    const showError = e !== undefined && e.at >= f.createdAt && (f.status === FAILED || lastSyncAt === null || e.at > lastSyncAt);
    const slot = f.cdc && f.sourceIsPostgres && shape.slotSizes ? tails.slots.get(slotOf(f)) : undefined;
    return {
      mirror: f.name,
      statusCode: f.status,
      workflowId: f.workflowId,
      flowType: f.cdc ? 'cdc' : f.config.watermarkColumn?.toLowerCase() === 'xmin' ? 'xmin' : 'qrep',
      source: f.source,
      destination: f.destination,
      rowsSynced: rows ? (synced?.rows ?? 0) : null,
      // Milliseconds are plenty, and keep a pending batch's lag from differing at every digit.
      lagSeconds: f.cdc && pendingLag ? Math.round((pendingLag.get(f.name) ?? 0) * 1000) / 1000 : null,
      slotLagBytes: slot?.bytes ?? null,
      slotLagSampledAt: slot?.at ?? null,
      slotWalStatus: knownWalStatus(slot?.walStatus),
      statusSince: f.updatedAt,
      errorAt: showError ? e.at : null,
      error: showError ? { message: e.message, class: classifyError(e.message) } : null,
      tables: tables?.get(f.name) ?? null,
    };
  });
}

function nextVersion(now: string, prev: PublishedState | undefined): { observedAt: string; seq: number } {
  if (!prev || now > prev.observedAt) return { observedAt: now, seq: 0 };
  return { observedAt: prev.observedAt, seq: prev.seq + 1 };
}

function identityChanged(o: Observation, status: Status, p: PublishedState): boolean {
  return (
    status !== p.status ||
    o.workflowId !== p.workflowId ||
    o.flowType !== p.flowType ||
    o.source !== p.source ||
    o.destination !== p.destination ||
    o.slotWalStatus !== (p.slotWalStatus ?? null) ||
    (o.error?.class ?? null) !== p.errorClass ||
    (o.error?.message ?? null) !== p.errorMessage ||
    // A total that falls is PeerDB dropping the mirror's stats (resync): shown at once, not after
    // the numbers interval, so rowsSynced equals PeerDB's own total within one poll.
    (o.rowsSynced !== null && p.rowsSynced !== null && o.rowsSynced < p.rowsSynced)
  );
}

function numbersChanged(o: Observation, p: PublishedState): boolean {
  return (
    o.rowsSynced !== p.rowsSynced || o.lagSeconds !== p.lagSeconds || o.slotLagBytes !== p.slotLagBytes ||
    o.slotLagSampledAt !== (p.slotLagSampledAt ?? null) || (o.tables?.digest ?? null) !== (p.tablesDigest ?? null)
  );
}

/** The tables without the errors logged before `entered` (the resync rule), digest recomputed; the
 * same object when none is. */
function withoutErrorsBefore(tables: MirrorTables, entered: string): MirrorTables {
  if (!tables.errorAts.some((at) => at !== null && at < entered)) return tables;
  const errorAts = tables.errorAts.map((at) => (at !== null && at < entered ? null : at));
  const entries = tables.entries.map((entry, i) => {
    if (errorAts[i] !== null || entry.error === undefined) return entry;
    const { error: _old, ...rest } = entry;
    return rest;
  });
  return { entries, errorAts, digest: digestOf(entries) };
}

/** An update whose fields may also be `null`: what PeerDB did not report. */
type ObservedUpdate = { [K in keyof UpdateInput]: UpdateInput[K] | (undefined extends UpdateInput[K] ? null : never) };

/**
 * Only the fields that have a value: `null` and absent mean the same to the daemon. Typed by the
 * message, so a field renamed or retyped there fails here too.
 */
function compact(update: ObservedUpdate): UpdateInput {
  return Object.fromEntries(Object.entries(update).filter(([, v]) => v !== null && v !== undefined)) as unknown as UpdateInput;
}

/**
 * `now`: PeerDB's clock at the poll (RFC 3339 UTC, microseconds); `nowMs`: the daemon's clock, for
 * the message's future limit; `maxFutureMs`: that limit (MIRRORSTATE_MAX_FUTURE, else the default). Pure.
 */
export function decide(
  observations: readonly Observation[],
  published: ReadonlyMap<string, PublishedState>,
  now: string,
  nowMs: number = Date.now(),
  maxFutureMs?: number,
  numbersIntervalMs: number = NUMBERS_INTERVAL_MS,
): Decision {
  const decision: Decision = { publish: [], skipped: [], seen: observations.length, dropped: 0 };
  const present = new Set<string>();
  const peerdbNowMs = Date.parse(now);
  for (const observed of observations) {
    let o = observed;
    present.add(o.mirror);
    const prev = published.get(o.mirror);
    const status = Number.isInteger(o.statusCode) ? STATUSES[o.statusCode] : undefined;
    if (status === undefined) {
      decision.skipped.push({ mirror: o.mirror, reason: 'status', detail: `flows.status ${o.statusCode} is not a FlowStatus code 0–11` });
      continue;
    }
    const fresh = !prev || prev.dropped;
    // An error logged before the mirror's latest entry into resync, setup or snapshot is over: the
    // entry is flows.updated_at at the poll that first sees the new status (PeerDB sets both in one
    // UPDATE), remembered with what was published so it survives restarts.
    const entered = ENTRY_STATUSES.has(status) && (fresh || prev.status !== status) ? o.statusSince : fresh ? null : (prev.enteredAt ?? null);
    if (o.error && entered !== null && o.errorAt !== null && o.errorAt < entered) o = { ...o, error: null, errorAt: null };
    if (o.tables && entered !== null) o = { ...o, tables: withoutErrorsBefore(o.tables, entered) };
    // Cheapest test first: an idle poll of thousands of mirrors stops at identity and numbers.
    if (!fresh && !identityChanged(o, status, prev) && !(numbersChanged(o, prev) && peerdbNowMs - Date.parse(prev.numbersAt) >= numbersIntervalMs)) continue;
    const version = nextVersion(now, prev);
    const update = compact({
      mirror: o.mirror, status, ...version, workflowId: o.workflowId, flowType: o.flowType, source: o.source,
      destination: o.destination, rowsSynced: o.rowsSynced, lagSeconds: o.lagSeconds, slotLagBytes: o.slotLagBytes,
      slotLagSampledAt: o.slotLagSampledAt, slotWalStatus: o.slotWalStatus, error: o.error, tables: o.tables?.entries,
    });
    const parsed = parseUpdate(update, nowMs, maxFutureMs);
    if (!parsed.ok) {
      const nameError = parsed.errors.find((e) => e.field === 'mirror');
      decision.skipped.push({
        mirror: o.mirror,
        reason: nameError ? 'name' : 'invalid',
        detail: parsed.errors.map((e) => `${e.field} ${e.message}`).join('; '),
      });
      continue;
    }
    // Numbers that did not change, or are not due, were still sent (the whole picture); what was
    // sent is what is recorded, and the 30 s clock restarts only when numbers actually moved on.
    const numbersMoved = fresh || numbersChanged(o, prev);
    decision.publish.push({
      update,
      state: {
        mirror: o.mirror, status, workflowId: o.workflowId, flowType: o.flowType, source: o.source, destination: o.destination,
        errorClass: o.error?.class ?? null, errorMessage: o.error?.message ?? null,
        rowsSynced: o.rowsSynced, lagSeconds: o.lagSeconds, slotLagBytes: o.slotLagBytes,
        slotLagSampledAt: o.slotLagSampledAt, slotWalStatus: o.slotWalStatus, enteredAt: entered, tablesDigest: o.tables?.digest ?? null,
        numbersAt: numbersMoved ? version.observedAt : prev.numbersAt,
        ...version, dropped: false,
      },
    });
  }
  for (const prev of published.values()) {
    if (prev.dropped || present.has(prev.mirror)) continue;
    const version = nextVersion(now, prev);
    decision.dropped++;
    decision.publish.push({
      update: compact({ mirror: prev.mirror, status: 'terminated', ...version, dropped: true }),
      state: { ...prev, status: 'terminated', errorClass: null, errorMessage: null, ...version, dropped: true },
    });
  }
  return decision;
}
