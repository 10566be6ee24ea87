import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseDuration } from '../../src/config.js';
import { redactUrl } from '../../src/log.js';

describe('config', () => {
  it('has the contract defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      databaseUrl: undefined, schema: 'mirrorstate', bossSchema: 'pgboss', httpPort: 9477, httpHost: '0.0.0.0',
      journalMaxAgeMs: 7 * 86_400_000, journalMaxPerMirror: 1000, transitionsMaxAgeMs: 0, trimIntervalMs: 60_000,
      ingestToken: undefined, logLevel: 'info', maxFutureMs: 300_000,
    });
    expect(loadConfig({ MIRRORSTATE_MAX_FUTURE: '1h' }).maxFutureMs).toBe(3_600_000);
    expect(() => loadConfig({ MIRRORSTATE_MAX_FUTURE: '0' })).toThrow(/MIRRORSTATE_MAX_FUTURE \/ --max-future must be at least 1s/);
    expect(Object.isFrozen(c)).toBe(true);
  });
  it('reads variables, and flags win', () => {
    const c = loadConfig({ MIRRORSTATE_HTTP_PORT: '1', MIRRORSTATE_BATCH_SIZE: '7' }, { 'http-port': '2' });
    expect([c.httpPort, c.batchSize]).toEqual([2, 7]);
  });
  it.each([
    ['30s', 30_000], ['15m', 900_000], ['12h', 43_200_000], ['7d', 604_800_000], ['0', 0], ['250ms', 250], ['90', 90_000],
  ])('duration %s = %i ms', (raw, ms) => expect(parseDuration(raw)).toBe(ms));
  it.each([['1w'], ['-1s'], ['1.5h'], ['']])('rejects duration %j', (raw) => expect(typeof parseDuration(raw)).toBe('object'));

  it('reports every bad setting at once, by variable and flag', () => {
    try {
      loadConfig({ MIRRORSTATE_CONCURRENCY: '0', MIRRORSTATE_SCHEMA: 'Bad-Name', MIRRORSTATE_LOG_LEVEL: 'loud', MIRRORSTATE_TRIM_INTERVAL: '0' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      expect(problems.map((p) => p.split(' ')[0])).toEqual([
        'MIRRORSTATE_SCHEMA', 'MIRRORSTATE_CONCURRENCY', 'MIRRORSTATE_TRIM_INTERVAL', 'MIRRORSTATE_LOG_LEVEL',
      ]);
    }
  });
  it.each([
    ['postgres://u:hunter2@db:99999/x', /DATABASE_URL \/ --database-url has port 99999: a port is a number from 1 to 65535/],
    ['postgres://u:hunter2@db:0/x', /has port 0: a port is a number from 1 to 65535/],
    ['postgres://u:hunt/er2@db/x', /has a port that is not a number \(a password with/],
    ['postgres://u:hunter2@db x/y', /must be a postgres:\/\/ URL: postgres:\/\/user:password@host:5432\/database/],
    ['mysql://u:hunter2@db/x', /must be a postgres:\/\/ or postgresql:\/\/ URL/],
  ])('says what is wrong with %s, in one line and without its password', (url, message) => {
    let error: unknown;
    try {
      loadConfig({ DATABASE_URL: url });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toMatch(/hunter|er2|\n/);
  });
  it('takes the highest port there is', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@db:65535/x' }).databaseUrl).toBe('postgres://u@db:65535/x');
  });
  it('refuses a catalog schema equal to the pg-boss schema', () => {
    expect(() => loadConfig({ MIRRORSTATE_SCHEMA: 'pgboss' })).toThrow(/must differ/);
  });
});

describe('redactUrl', () => {
  it.each([
    ['postgres://u:secret@h:5432/db', 'postgres://u:***@h:5432/db'],
    ['postgres://u@h/db', 'postgres://u@h/db'],
    ['postgres://h/db?password=secret&sslmode=require', 'postgres://h/db?password=***&sslmode=require'],
    ['not a url', '<unparseable url>'],
  ])('%s → %s', (url, shown) => expect(redactUrl(url)).toBe(shown));
});

describe('metric allow and deny lists', () => {
  it('anchors each expression to the whole family name', () => {
    const config = loadConfig({ MIRRORSTATE_METRIC_DENYLIST: 'peerdb_mirror_table_.*, peerdb_mirror_tables' });
    expect(config.metricDenylist?.map((r) => r.source)).toEqual(['^(?:peerdb_mirror_table_.*)$', '^(?:peerdb_mirror_tables)$']);
    expect(config.metricDenylist!.some((r) => r.test('peerdb_mirror_table'))).toBe(false);
  });

  it('stops start naming the setting of an invalid expression', () => {
    expect(() => loadConfig({}, { 'metric-allowlist': 'peerdb_(' })).toThrow(/--metric-allowlist has an invalid regular expression "peerdb_\("/);
  });

  it('refuses both lists at once, naming both', () => {
    expect(() => loadConfig({ MIRRORSTATE_METRIC_ALLOWLIST: 'peerdb_mirror_status', MIRRORSTATE_METRIC_DENYLIST: 'peerdb_mirror_info' }))
      .toThrow(/MIRRORSTATE_METRIC_ALLOWLIST \/ --metric-allowlist and MIRRORSTATE_METRIC_DENYLIST \/ --metric-denylist: give at most one/);
  });
});
