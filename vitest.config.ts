import { defineConfig } from 'vitest/config';
import { ToolsReporter } from './test/setup/tools.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: more files at once only makes the daemons in e2e tests fight for CPU.
    maxWorkers: 2,
    pool: 'forks',
    // The PostgreSQL server of the run: TEST_DATABASE_URL, the machine's, or the embedded one.
    globalSetup: ['test/setup/database.ts'],
    // Before that, the programs the selected files run (Chromium, Prometheus), installed when missing.
    // Under CI a JSON report too, from which .ci/run prints a plain "N passed, N failed" line.
    reporters: [
      'default',
      new ToolsReporter(),
      ...(process.env.CI ? [['json', { outputFile: 'test-results.json' }] as ['json', { outputFile: string }]] : []),
    ],
  },
});
