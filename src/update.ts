/**
 * The state-update message, version 1 (docs/message.md): parse and validate, purely.
 *
 * A parsed update carries its `observedAt` as a canonical UTC string with exactly six fraction
 * digits (`2026-11-21T10:00:00.123456Z`). That string sorts like the instant it names, so the
 * version `(observedAt, seq)` can be compared in JavaScript without losing the microseconds that a
 * `Date` would drop, and PostgreSQL parses it into the same `timestamptz` exactly.
 */
import { type FieldCheck, MIRROR_FIELD_LIST, type MirrorFieldValues } from './catalog/mirrorFields.js';

export const STATUSES = [
  'unknown',
  'running',
  'paused',
  'pausing',
  'setup',
  'snapshot',
  'terminating',
  'terminated',
  'completed',
  'resync',
  'failed',
  'modifying',
] as const;

export type Status = (typeof STATUSES)[number];

/** A replication slot's `wal_status` as PostgreSQL's pg_replication_slots reports it. */
export const WAL_STATUSES = ['reserved', 'extended', 'unreserved', 'lost'] as const;
export type WalStatus = (typeof WAL_STATUSES)[number];

/** Whether `value` is one of PostgreSQL's wal_status states. */
export function isWalStatus(value: unknown): value is WalStatus {
  return (WAL_STATUSES as readonly unknown[]).includes(value);
}

/** The most tables one update may list (docs/tables.md). */
export const MAX_TABLES_PER_UPDATE = 10_000;
const MAX_TABLE_NAME_CHARS = 512;

/** The most updates one job or one HTTP request may carry. */
export const MAX_UPDATES_PER_MESSAGE = 1000;
/** How far into the future of our clock an `observedAt` may lie, unless MIRRORSTATE_MAX_FUTURE says otherwise. */
export const MAX_FUTURE_SKEW_MS = 5 * 60 * 1000;

const MAX_NAME_CHARS = 255;
const MAX_ERROR_MESSAGE_CHARS = 8192;
const FLOW_TYPE = /^[a-z0-9_]{1,32}$/;
const ERROR_CLASS = /^[a-z0-9_]{1,64}$/;
const CONTROL_CHARACTER = /\p{Cc}/u;
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

export interface UpdateError {
  message: string;
  class: string;
}

/** A table's initial load, as the update reports it (docs/tables.md); null where unknown. */
export interface TableSnapshot {
  partitions: number | null;
  partitionsSynced: number | null;
  rowsSynced: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

/** One table of a mirror, as of the update's observedAt. Each entry is whole: what it leaves out is unknown. */
export interface TableEntry {
  table: string;
  rowsSynced: number | null;
  lastSyncedAt: string | null;
  snapshot: TableSnapshot | null;
  error: UpdateError | null;
}

/** A valid update; the values it reports about its mirror are declared in catalog/mirrorFields.ts. */
export interface StateUpdate extends MirrorFieldValues {
  mirror: string;
  status: Status;
  /** Canonical UTC, microsecond precision: the value every ordering rule uses. */
  observedAt: string;
  seq: number;
  error: UpdateError | null;
  /** The mirror's complete table set, or null when the update does not report it (the set stays as it was). */
  tables: TableEntry[] | null;
  dropped: boolean;
  /** The update exactly as received, unknown fields included: what the journal keeps. */
  payload: Record<string, unknown>;
}

export interface FieldError {
  field: string;
  message: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

const STATUS_BY_SPELLING = new Map<string, Status>(
  STATUSES.flatMap((status) => [
    [status, status],
    [status.toUpperCase(), status],
    [`STATUS_${status.toUpperCase()}`, status],
  ]),
);

export function statusCode(status: Status): number {
  return STATUSES.indexOf(status);
}

export function parseStatus(value: unknown): Status | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? STATUSES[value] : undefined;
  if (typeof value === 'string') return STATUS_BY_SPELLING.get(value);
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function charCount(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Whether the year (from 1), month and day name a day of the calendar. */
function isDate(year: number, month: number, day: number): boolean {
  const maxDay = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1];
  return year >= 1 && maxDay !== undefined && day >= 1 && day <= maxDay;
}

/** Whether the hour, minute and second name a time of day (no leap second). */
function isTimeOfDay(hour: number, minute: number, second: number): boolean {
  return hour <= 23 && minute <= 59 && second <= 59;
}

// The canonical form, `2026-11-21T10:00:00.123456Z`: per position the character it must hold, 0 for a digit.
const CANONICAL_SHAPE = [...'0000-00-00T00:00:00.000000Z'].map((c) => (c === '0' ? 0 : c.charCodeAt(0)));

/** The number written by the digits of `text` from `at`, `length` long (checked digits only). */
function digitsAt(text: string, at: number, length: number): number {
  let n = 0;
  for (let i = at; i < at + length; i++) n = n * 10 + text.charCodeAt(i) - 48;
  return n;
}

/**
 * Whether `text` is already canonical and a real instant: what the PeerDB source and most producers
 * send, and every timestamp a table entry carries. Checked character by character, with no
 * match and no date built: a first import validates some 300,000 of them.
 */
function isCanonical(text: string): boolean {
  if (text.length !== CANONICAL_SHAPE.length) return false;
  for (let i = 0; i < CANONICAL_SHAPE.length; i++) {
    const c = text.charCodeAt(i);
    const want = CANONICAL_SHAPE[i]!;
    if (want === 0 ? c < 48 || c > 57 : c !== want) return false;
  }
  return isDate(digitsAt(text, 0, 4), digitsAt(text, 5, 2), digitsAt(text, 8, 2))
    && isTimeOfDay(digitsAt(text, 11, 2), digitsAt(text, 14, 2), digitsAt(text, 17, 2));
}

/** RFC 3339 with an offset → canonical UTC at microseconds, or a reason (parseTimestamp without the instant). */
function canonicalTimestamp(text: string): { ok: true; canonical: string } | { ok: false; message: string } {
  return isCanonical(text) ? { ok: true, canonical: text } : parseTimestamp(text);
}

/**
 * RFC 3339 with an offset → canonical UTC at microseconds, or a reason. Fractions beyond
 * microseconds are truncated (Go's RFC3339Nano writes nine digits).
 */
export function parseTimestamp(
  text: string,
): { ok: true; canonical: string; epochMicros: bigint } | { ok: false; message: string } {
  const match = RFC3339.exec(text);
  if (!match) {
    return { ok: false, message: 'must be an RFC 3339 timestamp with an offset, e.g. 2026-11-21T10:00:00.123456Z' };
  }
  const [, y, mo, d, h, mi, s, fraction = '', , sign, oh, om] = match;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const offsetHours = Number(oh ?? 0);
  const offsetMinutes = Number(om ?? 0);
  if (!isDate(year, month, day)) {
    return { ok: false, message: `has no such date: ${y}-${mo}-${d}` };
  }
  if (!isTimeOfDay(hour, minute, second)) {
    return { ok: false, message: `has no such time of day: ${h}:${mi}:${s} (leap seconds are not accepted)` };
  }
  if (offsetHours > 23 || offsetMinutes > 59) {
    return { ok: false, message: `has an invalid offset: ${sign}${oh}:${om}` };
  }
  const micros = fraction.slice(0, 6).padEnd(6, '0');
  const offsetMs = (sign === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  const utcMs = date.getTime() - offsetMs;
  const utc = new Date(utcMs);
  const utcYear = utc.getUTCFullYear();
  if (utcYear < 1 || utcYear > 9999) {
    return { ok: false, message: 'is outside the years 0001–9999 once converted to UTC' };
  }
  const canonical = `${utc.toISOString().slice(0, 19)}.${micros}Z`;
  return { ok: true, canonical, epochMicros: BigInt(utcMs) * 1000n + BigInt(micros) };
}

/** `5 minutes`, `90 seconds`, `2 hours`: a limit as the reason line of a dead letter states it. */
function describeSpan(ms: number): string {
  const units: [number, string][] = [[86_400_000, 'day'], [3_600_000, 'hour'], [60_000, 'minute'], [1000, 'second']];
  const [size, name] = units.find(([size]) => ms % size === 0 && ms >= size) ?? [1, 'millisecond'];
  const n = ms / size;
  return `${n} ${name}${n === 1 ? '' : 's'}`;
}

/** How deep an update's JSON may nest (unknown fields included): far beyond any real payload. */
export const MAX_PAYLOAD_DEPTH = 64;

function isUnstorable(text: string): boolean {
  return text.includes('\u0000') || !text.isWellFormed();
}

/**
 * Walks a received value for what the journal's jsonb cannot hold: U+0000 or unpaired surrogates
 * in any string or key, or nesting deeper than MAX_PAYLOAD_DEPTH. Returns the field at fault.
 */
function findUnstorable(value: unknown, path: string, depth = 0): FieldError | undefined {
  if (depth > MAX_PAYLOAD_DEPTH) {
    return { field: path, message: `nests deeper than ${MAX_PAYLOAD_DEPTH} levels` };
  }
  if (typeof value === 'string') {
    return isUnstorable(value) ? { field: path, message: 'contains U+0000 or an unpaired surrogate, which cannot be stored' } : undefined;
  }
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((item, i) => [`${path}[${i}]`, item])
    : isPlainObject(value)
      ? Object.entries(value).map(([key, item]) => [path ? `${path}.${key}` : key, item])
      : [];
  if (isPlainObject(value)) {
    const badKey = Object.keys(value).find(isUnstorable);
    if (badKey !== undefined) {
      return { field: path ? `${path}.${badKey}` : badKey, message: 'is a key with U+0000 or an unpaired surrogate, which cannot be stored' };
    }
  }
  for (const [itemPath, item] of entries) {
    const found = findUnstorable(item, itemPath, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

class Checker {
  /** `prefix` names the object being checked in error fields (`tables[3].snapshot.`); errors go to `errors`. */
  constructor(
    private readonly input: Record<string, unknown>,
    readonly errors: FieldError[] = [],
    private readonly prefix = '',
  ) {}

  /** A checker of a nested object, reporting into the same list. */
  nested(input: Record<string, unknown>, prefix: string): Checker {
    return new Checker(input, this.errors, prefix);
  }

  fail(field: string, message: string): undefined {
    this.errors.push({ field: this.prefix + field, message });
    return undefined;
  }

  /** `null` means the same as absent for optional fields. */
  present(field: string): boolean {
    return this.input[field] !== undefined && this.input[field] !== null;
  }

  name(field: string, required: boolean): string | null {
    const value = this.input[field];
    if (value === undefined || value === null) {
      if (required) this.fail(field, 'is required');
      return null;
    }
    if (typeof value !== 'string') return this.fail(field, `must be a string, got ${typeName(value)}`) ?? null;
    const length = charCount(value);
    if (required && length < 1) return this.fail(field, 'must not be empty') ?? null;
    if (length > MAX_NAME_CHARS) return this.fail(field, `must be at most ${MAX_NAME_CHARS} characters, got ${length}`) ?? null;
    return value;
  }

  /** An RFC 3339 timestamp as canonical UTC at microseconds; null when absent. */
  timestamp(field: string, value: unknown): string | null {
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') return this.fail(field, `must be a string, got ${typeName(value)}`) ?? null;
    const parsed = canonicalTimestamp(value);
    return parsed.ok ? parsed.canonical : (this.fail(field, parsed.message) ?? null);
  }

  /** `{ message, class }`, class defaulting to `unknown`; null when absent or wrong. */
  error(field: string): UpdateError | null {
    const value = this.input[field];
    if (value === undefined || value === null) return null;
    if (!isPlainObject(value)) return this.fail(field, `must be an object { message, class }, got ${typeName(value)}`) ?? null;
    const message = value.message;
    const errorClass = value.class ?? 'unknown';
    let ok = true;
    if (typeof message !== 'string') {
      ok = this.fail(`${field}.message`, `is required and must be a string, got ${typeName(message)}`) ?? false;
    } else if (charCount(message) > MAX_ERROR_MESSAGE_CHARS) {
      ok = this.fail(`${field}.message`, `must be at most ${MAX_ERROR_MESSAGE_CHARS} characters`) ?? false;
    }
    if (typeof errorClass !== 'string' || !ERROR_CLASS.test(errorClass)) {
      ok = this.fail(`${field}.class`, 'must match [a-z0-9_]{1,64}') ?? false;
    }
    return ok ? { message: message as string, class: errorClass as string } : null;
  }

  integer(field: string): number | null {
    const value = this.input[field];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      return this.fail(field, `must be an integer, got ${typeName(value)}`) ?? null;
    }
    if (value < 0 || !Number.isSafeInteger(value)) {
      return this.fail(field, 'must be between 0 and 2^53-1') ?? null;
    }
    return value;
  }
}

/** How each kind of reported value is checked (catalog/mirrorFields.ts names the kind per field); null when absent or wrong. */
const FIELD_CHECKS: Record<FieldCheck, (check: Checker, field: string, value: unknown) => string | number | null> = {
  name: (check, field) => check.name(field, false),
  count: (check, field) => check.integer(field),
  flowType: (check, field, value) => {
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string' || !FLOW_TYPE.test(value)) return check.fail(field, 'must match [a-z0-9_]{1,32}, e.g. cdc, qrep, xmin') ?? null;
    return value;
  },
  seconds: (check, field, value) => {
    if (value === undefined || value === null) return null;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      return check.fail(field, `must be a finite number >= 0, got ${typeName(value)}`) ?? null;
    }
    return value;
  },
  timestamp: (check, field, value) => check.timestamp(field, value),
  walStatus: (check, field, value) => {
    if (value === undefined || value === null) return null;
    if (!isWalStatus(value)) {
      return check.fail(field, `must be one of ${WAL_STATUSES.join(', ')}, got ${typeName(value)}`) ?? null;
    }
    return value;
  },
};

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && !Number.isInteger(value)) return `the number ${value}`;
  if (typeof value === 'object') return 'an object';
  // String() rather than JSON.stringify: a library caller may hand us a bigint or a symbol.
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value as string);
  return `${typeof value} ${shown}`.slice(0, 80);
}

/** A table's name: 1–512 characters, no control characters. */
function tableName(check: Checker, value: unknown): string | null {
  if (value === undefined || value === null) return check.fail('table', 'is required') ?? null;
  if (typeof value !== 'string') return check.fail('table', `must be a string, got ${typeName(value)}`) ?? null;
  const length = charCount(value);
  if (length < 1 || length > MAX_TABLE_NAME_CHARS) {
    return check.fail('table', `must be 1–${MAX_TABLE_NAME_CHARS} characters, got ${length}`) ?? null;
  }
  if (CONTROL_CHARACTER.test(value)) return check.fail('table', 'must not contain control characters') ?? null;
  return value;
}

function parseSnapshot(check: Checker, value: Record<string, unknown>): TableSnapshot {
  const partitions = check.integer('partitions');
  const partitionsSynced = check.integer('partitionsSynced');
  if (partitions !== null && partitionsSynced !== null && partitionsSynced > partitions) {
    check.fail('partitionsSynced', `must be at most partitions (${partitions}), got ${partitionsSynced}`);
  }
  return {
    partitions,
    partitionsSynced,
    rowsSynced: check.integer('rowsSynced'),
    startedAt: check.timestamp('startedAt', value.startedAt),
    finishedAt: check.timestamp('finishedAt', value.finishedAt),
  };
}

/**
 * `tables`: the mirror's complete table set (docs/tables.md), null when absent. A bad entry makes the
 * whole update invalid, its errors named `tables[i].field`.
 */
function parseTables(check: Checker, value: unknown): TableEntry[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value)) return check.fail('tables', `must be an array of tables, got ${typeName(value)}`) ?? null;
  if (value.length > MAX_TABLES_PER_UPDATE) {
    return check.fail('tables', `must list at most ${MAX_TABLES_PER_UPDATE} tables, got ${value.length}`) ?? null;
  }
  const seen = new Set<string>();
  const entries: TableEntry[] = [];
  value.forEach((item: unknown, i) => {
    const at = `tables[${i}]`;
    if (!isPlainObject(item)) {
      check.fail(at, `must be an object { table, … }, got ${typeName(item)}`);
      return;
    }
    const entry = check.nested(item, `${at}.`);
    const table = tableName(entry, item.table);
    if (table !== null) {
      if (seen.has(table)) entry.fail('table', `${JSON.stringify(table).slice(0, 80)} is listed twice`);
      seen.add(table);
    }
    let snapshot: TableSnapshot | null = null;
    if (item.snapshot !== undefined && item.snapshot !== null) {
      if (!isPlainObject(item.snapshot)) entry.fail('snapshot', `must be an object, got ${typeName(item.snapshot)}`);
      else snapshot = parseSnapshot(entry.nested(item.snapshot, `${at}.snapshot.`), item.snapshot);
    }
    entries.push({
      table: table ?? '',
      rowsSynced: entry.integer('rowsSynced'),
      lastSyncedAt: entry.timestamp('lastSyncedAt', item.lastSyncedAt),
      snapshot,
      error: entry.error('error'),
    });
  });
  return entries;
}

/**
 * Validates one update as received. `nowMs` is the daemon's clock, for the future limit of
 * `maxFutureMs` (MIRRORSTATE_MAX_FUTURE).
 */
export function parseUpdate(
  input: unknown,
  nowMs: number = Date.now(),
  maxFutureMs: number = MAX_FUTURE_SKEW_MS,
): ParseResult<StateUpdate> {
  if (!isPlainObject(input)) {
    return { ok: false, errors: [{ field: '', message: `an update must be a JSON object, got ${typeName(input)}` }] };
  }
  const unstorable = findUnstorable(input, '');
  if (unstorable !== undefined) return { ok: false, errors: [unstorable] };
  const check = new Checker(input);

  const mirror = check.name('mirror', true);
  if (mirror !== null && CONTROL_CHARACTER.test(mirror)) check.fail('mirror', 'must not contain control characters');

  let status: Status | undefined;
  if (!check.present('status')) check.fail('status', 'is required');
  else {
    status = parseStatus(input.status);
    if (status === undefined) {
      check.fail(
        'status',
        `must be one of ${STATUSES.join(', ')} (lower case, upper case, STATUS_-prefixed) or their codes 0–11, got ${typeName(input.status)}`,
      );
    }
  }

  let observedAt: string | undefined;
  if (!check.present('observedAt')) check.fail('observedAt', 'is required');
  else if (typeof input.observedAt !== 'string') check.fail('observedAt', `must be a string, got ${typeName(input.observedAt)}`);
  else {
    const parsed = parseTimestamp(input.observedAt);
    if (!parsed.ok) check.fail('observedAt', parsed.message);
    else if (parsed.epochMicros > BigInt(nowMs + maxFutureMs) * 1000n) {
      check.fail('observedAt', `is more than ${describeSpan(maxFutureMs)} in the future of the daemon clock`);
    } else observedAt = parsed.canonical;
  }

  const seq = check.integer('seq') ?? 0;
  const reported: Record<string, string | number | null> = {};
  for (const f of MIRROR_FIELD_LIST) reported[f.name] = FIELD_CHECKS[f.check](check, f.name, input[f.name]);

  const error = check.error('error');
  const tables = parseTables(check, input.tables);

  let dropped = false;
  if (check.present('dropped')) {
    if (typeof input.dropped !== 'boolean') check.fail('dropped', `must be a boolean, got ${typeName(input.dropped)}`);
    else dropped = input.dropped;
  }

  if (check.errors.length > 0 || mirror === null || status === undefined || observedAt === undefined) {
    return { ok: false, errors: check.errors };
  }
  return {
    ok: true,
    value: {
      mirror,
      status,
      observedAt,
      seq,
      ...(reported as MirrorFieldValues),
      error,
      tables,
      dropped,
      payload: input,
    },
  };
}

/** One element of a message: its position in `{updates:[…]}` (null for a bare update) and the outcome. */
export interface ParsedElement {
  index: number | null;
  received: unknown;
  result: ParseResult<StateUpdate>;
}

export type ParsedMessage =
  | { ok: true; elements: ParsedElement[] }
  | { ok: false; reason: string; errors: FieldError[] };

/**
 * A message is one update or `{ "updates": [ … ] }` of at most 1000. Anything else is rejected
 * whole; inside a valid envelope each update stands or falls on its own.
 */
export function parseMessage(data: unknown, nowMs: number = Date.now(), maxFutureMs: number = MAX_FUTURE_SKEW_MS): ParsedMessage {
  if (isPlainObject(data) && 'updates' in data && !('mirror' in data)) {
    const updates = data.updates;
    if (!Array.isArray(updates)) {
      return { ok: false, reason: 'invalid message', errors: [{ field: 'updates', message: 'must be an array of updates' }] };
    }
    if (updates.length > MAX_UPDATES_PER_MESSAGE) {
      return {
        ok: false,
        reason: 'invalid message',
        errors: [{ field: 'updates', message: `must hold at most ${MAX_UPDATES_PER_MESSAGE} updates, got ${updates.length}` }],
      };
    }
    return {
      ok: true,
      elements: updates.map((received, index) => ({ index, received, result: parseUpdate(received, nowMs, maxFutureMs) })),
    };
  }
  if (isPlainObject(data)) {
    return { ok: true, elements: [{ index: null, received: data, result: parseUpdate(data, nowMs, maxFutureMs) }] };
  }
  return {
    ok: false,
    reason: 'invalid message',
    errors: [{ field: '', message: `job data must be an update object or { "updates": [...] }, got ${typeName(data)}` }],
  };
}

/** The reason line of a dead letter: the first error, and how many more. */
export function describeErrors(errors: FieldError[]): string {
  const [first] = errors;
  if (!first) return 'invalid update';
  const head = first.field ? `${first.field} ${first.message}` : first.message;
  return errors.length > 1 ? `${head} (and ${errors.length - 1} more)` : head;
}
