/** Which errors are a database outage (retry with backoff, log once) and which are not: by SQLSTATE, never by message. */
import { expect, it } from 'vitest';
import { isConnectionLoss } from '../../src/db/sqlstate.js';

const withCode = (code: string, message = 'whatever the server says'): Error => Object.assign(new Error(message), { code });

it.each([
  ['57P01 admin_shutdown (a fast stop or restart)', withCode('57P01'), true],
  ['57P02 crash_shutdown', withCode('57P02'), true],
  ['57P03 cannot_connect_now (starting up)', withCode('57P03'), true],
  ['53300 too_many_connections', withCode('53300'), true],
  ['08006 connection_failure (class 08)', withCode('08006'), true],
  ['08P01 protocol_violation (class 08)', withCode('08P01'), true],
  ['ECONNREFUSED from the socket', withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'), true],
  ["pg-boss's copy of a socket error (a plain object)", { message: 'connect ECONNRESET', code: 'ECONNRESET' }, true],
  ['a plain client Error without code (connection terminated, connect timeout)', new Error('anything'), true],
  ['40001 serialization_failure: the statement, not the connection', withCode('40001'), false],
  ['57014 query_canceled (statement timeout)', withCode('57014'), false],
  ['23505 unique_violation', withCode('23505'), false],
  ['42P01 undefined_table', withCode('42P01', 'terminating connection'), false],
  ['a TypeError: a bug, never an outage', new TypeError('x is undefined'), false],
  ['a plain object without code', { message: 'Connection terminated' }, false],
  ['undefined', undefined, false],
])('%s → %s', (_what, err, expected) => {
  expect(isConnectionLoss(err)).toBe(expected);
});
