/**
 * pg-boss's warnings are logged, but a standing one is not repeated at every monitor pass: a queue
 * over its warning size makes pg-boss warn every pass (every 2 s here), and the daemon's log would
 * carry a line every few seconds for as long as a backlog lasts.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createBoss, WARNING_REPEAT_MS, warningLogger } from '../../src/queue/boss.js';
import { waitFor } from '../helpers/daemon.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/** A logger whose lines are kept, parsed. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger('info', sink), lines };
}

describe("pg-boss's warnings", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('boss_warnings');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('a backlog warning repeated at every monitor pass is logged once', async () => {
    const { log, lines } = capturedLogger();
    const boss = createBoss({ connectionString: db.url, schema: 'pgboss', max: 2, logger: log, worker: true });
    let warnings = 0;
    boss.on('warning', () => warnings++);
    try {
      await boss.start();
      await boss.createQueue('backlogged', { warningQueueSize: 1 });
      await boss.insert('backlogged', [{ data: {} }, { data: {} }, { data: {} }]);
      await waitFor('three monitor passes to warn', () => warnings >= 3, 30_000, 100);
    } finally {
      await boss.stop({ graceful: false });
    }
    const logged = lines.filter((l) => l.msg === 'pg-boss warning');
    expect(logged).toHaveLength(1);
    expect(JSON.stringify(logged[0]!.warning)).toMatch(/backlogged/);
  });

  it('logs a kind again after WARNING_REPEAT_MS, with how many were held back; another kind at once', () => {
    const { log, lines } = capturedLogger();
    let clock = 0;
    const warn = warningLogger(log, () => clock);
    const backlog = (jobs: number) => ({ message: `large queue backlog: queue "q" has ${jobs} jobs` });
    warn(backlog(11));
    clock = 2_000;
    warn(backlog(12));
    warn({ message: 'slow query' });
    clock = WARNING_REPEAT_MS - 1;
    warn(backlog(13));
    clock = WARNING_REPEAT_MS;
    warn(backlog(14));
    expect(lines.map((l) => [(l.warning as { message: string }).message, l.heldBack])).toEqual([
      ['large queue backlog: queue "q" has 11 jobs', undefined],
      ['slow query', undefined],
      ['large queue backlog: queue "q" has 14 jobs', 2],
    ]);
  });
});
