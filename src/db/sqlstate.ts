/**
 * What an error from PostgreSQL (or from the way to it) means for whoever met it, decided by its
 * SQLSTATE and never by its message text: set the update at fault aside (poison), report a
 * database outage, or, anything else, try the same work again (pg-boss retries a failed batch).
 */
/**
 * SQLSTATE classes that blame the data rather than the moment: retrying the same batch fails the
 * same way, so the consumer isolates the update at fault and dead-letters it instead.
 */
const POISON_SQLSTATE_CLASSES: Record<string, string> = {
  '22': 'data exception (a value the column cannot hold)',
  '23': 'integrity constraint violation',
  '54': 'program limit exceeded (a value too large to index or store)',
};

export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function isPoison(err: unknown): boolean {
  const code = sqlState(err);
  return code !== undefined && code.slice(0, 2) in POISON_SQLSTATE_CLASSES;
}

/**
 * SQLSTATEs that say the connection failed, not the statement: the server restarts, is gone or
 * does not take connections yet. Whoever meets one reports a database outage (logged once, see
 * db/outage.ts) and retries with backoff instead of logging every attempt.
 */
const CONNECTION_LOSS_SQLSTATES: Record<string, string> = {
  '57P01': 'admin_shutdown: the server is shutting down (a restart, a fast stop)',
  '57P02': 'crash_shutdown: another backend crashed and the server resets',
  '57P03': 'cannot_connect_now: the server is starting up or shutting down',
  '53300': 'too_many_connections: full for now, typically just after a restart',
};
const CONNECTION_LOSS_SQLSTATE_CLASSES: Record<string, string> = {
  '08': 'connection exception',
};
/** Bugs, never outages, even though they carry no SQLSTATE. */
const PROGRAMMING_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError];

export function isConnectionLoss(err: unknown): boolean {
  const code = sqlState(err);
  if (code !== undefined) return code in CONNECTION_LOSS_SQLSTATES || code.slice(0, 2) in CONNECTION_LOSS_SQLSTATE_CLASSES;
  // No SQLSTATE: the server never answered. Socket errors carry an errno code (ECONNREFUSED,
  // ECONNRESET), also in the copies pg-boss emits; node-pg raises connect timeouts and "connection
  // terminated" as plain Errors. Everything the server itself says has a SQLSTATE.
  if (isErrnoCode((err as { code?: unknown } | null)?.code)) return true;
  return err instanceof Error && !PROGRAMMING_ERRORS.some((type) => err instanceof type);
}

/** Without a SQLSTATE and not a bug: while a database is known to be down, an echo of that. */
export function isClientSideError(err: unknown): boolean {
  return sqlState(err) === undefined && !PROGRAMMING_ERRORS.some((type) => err instanceof type);
}

const isErrnoCode = (code: unknown): boolean => typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code);
