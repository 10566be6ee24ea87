/**
 * The daemon's own metric families (CONTRACT §5), declared once: name, help, type, labels.
 * Per-mirror families are not prom-client objects: see metrics/mirrors.ts.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type UpdateResult = 'applied' | 'stale' | 'duplicate' | 'rejected';

export interface DaemonMetrics {
  registry: Registry;
  updates: Counter<'result'>;
  batchSize: Histogram;
  batchDuration: Histogram;
  journalTrimmed: Counter;
}

export function createDaemonMetrics(): DaemonMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const updates = new Counter({
    name: 'mirrorstate_updates_total',
    help: 'State updates taken from the queue, by result: applied, stale, duplicate, rejected.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  // Every result exists from the start, so rate() and absent() work before the first batch.
  for (const result of ['applied', 'stale', 'duplicate', 'rejected'] satisfies UpdateResult[]) updates.inc({ result }, 0);
  return {
    registry,
    updates,
    batchSize: new Histogram({
      name: 'mirrorstate_batch_size',
      help: 'Updates per catalog write.',
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
      registers: [registry],
    }),
    batchDuration: new Histogram({
      name: 'mirrorstate_batch_duration_seconds',
      help: 'Time per catalog write, from the first statement to the commit.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    journalTrimmed: new Counter({
      name: 'mirrorstate_journal_trimmed_total',
      help: 'Journal rows removed by retention.',
      registers: [registry],
    }),
  };
}
