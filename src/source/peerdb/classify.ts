/**
 * The `class` of an error PeerDB logged (flow_errors.error_message), for `peerdb_mirror_error{class}`
 * and alert routing. PeerDB stores only the message text, so the class comes from matching it: the
 * first pattern that matches wins, top to bottom, and a message nothing matches is `unknown`.
 * Pure; the table is the documentation (docs/peerdb.md, Where each field comes from).
 */

export interface ErrorPattern {
  class: string;
  pattern: RegExp;
  /** Why this class exists: what an operator does about it. */
  why: string;
}

export const ERROR_PATTERNS: readonly ErrorPattern[] = [
  {
    class: 'replication_slot',
    pattern: /replication slot .*(does not exist|is active|invalidated|already exists)|requested WAL segment .* has already been removed|wal_status.*lost|can no longer get changes from replication slot/i,
    why: 'the source slot is gone, busy or lost its WAL: the mirror needs a resync or the slot freed',
  },
  {
    class: 'auth',
    pattern: /password authentication failed|authentication failed|permission denied|access denied|not authorized|insufficient privilege|invalid credentials/i,
    why: 'credentials or grants of a peer changed',
  },
  {
    class: 'connection',
    pattern: /connection refused|ECONNREFUSED|no route to host|could not connect|connection reset|broken pipe|i\/o timeout|dial tcp|no such host|server closed the connection|EOF/i,
    why: 'a peer is unreachable: network, DNS or the peer is down',
  },
  {
    class: 'timeout',
    pattern: /context deadline exceeded|timed? ?out|statement timeout|canceling statement due to/i,
    why: 'an operation ran out of time: a slow or overloaded peer',
  },
  {
    class: 'schema',
    pattern: /(column|relation|table|schema) .*does not exist|type mismatch|schema change|incompatible (type|schema)|cannot cast/i,
    why: 'source and destination tables disagree: a schema change PeerDB could not apply',
  },
  {
    class: 'resources',
    pattern: /no space left on device|disk full|out of memory|OOM|quota exceeded|too many connections|resource exhausted/i,
    why: 'a peer or PeerDB itself ran out of disk, memory or connections',
  },
];

export const UNKNOWN_ERROR_CLASS = 'unknown';

export function classifyError(message: string): string {
  return ERROR_PATTERNS.find((p) => p.pattern.test(message))?.class ?? UNKNOWN_ERROR_CLASS;
}
