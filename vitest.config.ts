import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: more files at once only makes the daemons in e2e tests fight for CPU.
    maxWorkers: 2,
    pool: 'forks',
  },
});
