import { describe, expect, it } from 'vitest';
import { CommandFailure, connectionFailure, describeFailure, EXIT, scrubSecrets, secretsOf } from '../../src/cli/failure.js';

const context = { schema: 'mirrorstate', bossSchema: 'pgboss', verbose: false };

describe('a command failure as one line', () => {
  it('says a bug is one, and prints its stack only when asked (debug)', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
    expect(describeFailure(bug, context)).toEqual({
      line: "unexpected error, a bug: Cannot read properties of undefined (reading 'x') (MIRRORSTATE_LOG_LEVEL=debug prints its stack)",
      exitCode: EXIT.failed,
    });
    expect(describeFailure(bug, { ...context, verbose: true }).stack).toContain('    at ');
  });

  it('passes on a message that explains itself, first line only', () => {
    const err = new Error('PeerDB catalog has no column flows.status: PeerDB before its migration V44\nmore');
    expect(describeFailure(err, context)).toEqual({ line: 'PeerDB catalog has no column flows.status: PeerDB before its migration V44', exitCode: EXIT.failed });
    expect(describeFailure(new CommandFailure('no data', EXIT.usage), context)).toEqual({ line: 'no data', exitCode: EXIT.usage });
  });

  it('names the port, and the setting, of a listen that failed', () => {
    const err = Object.assign(new Error('listen EADDRINUSE: address already in use 0.0.0.0:9477'), { code: 'EADDRINUSE', port: 9477, address: '0.0.0.0' });
    expect(describeFailure(err, context).line).toMatch(/^the HTTP port 9477 is already in use .*MIRRORSTATE_HTTP_PORT \/ --http-port$/);
  });

  it.each([
    ['28P01', 'password authentication failed for user "u"', /refused the login of "u" .*check the user and password in DATABASE_URL/],
    ['3D000', 'database "db" does not exist', /there is no database "db" at h:5433\/db: create it/],
    ['57P03', 'the database system is starting up', /is starting up or shutting down .*try again/],
  ])('a login answered with SQLSTATE %s', (code, message, line) => {
    const err = Object.assign(new Error(message), { code });
    expect(connectionFailure(err, { url: 'postgres://u:pw-secret@h:5433/db', setting: 'DATABASE_URL (--database-url)' }).message).toMatch(line);
  });
});

describe('secrets in a line', () => {
  it('are every password of the configured URLs, raw and decoded, and the tokens', () => {
    const secrets = secretsOf(['postgres://u:p%40ss-word@h/db', 'postgres://h/db?password=qs-secret', undefined, 'ingest-token-1']);
    expect(secrets).toEqual(expect.arrayContaining(['p%40ss-word', 'p@ss-word', 'qs-secret', 'ingest-token-1']));
    expect(scrubSecrets('auth failed for p@ss-word and qs-secret', secrets)).toBe('auth failed for *** and ***');
  });
});
