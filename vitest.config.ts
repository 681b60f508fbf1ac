import { configDefaults, defineConfig } from 'vitest/config';

const UNIT = 'test/**/*.unit.test.ts';

export default defineConfig({
  test: {
    // Both projects share the two workers: unit files fill the gaps between server-bound ones.
    maxWorkers: 2,
    fileParallelism: true,
    projects: [
      {
        test: {
          // Pure modules, no server: seconds in all, so a test that waits is a failure.
          name: 'unit',
          include: [UNIT],
          // forks, not threads: the configuration tests change the working directory.
          pool: 'forks',
          testTimeout: 10_000,
          hookTimeout: 10_000,
        },
      },
      {
        test: {
          // Integration tests start real PostgreSQL servers: generous hooks, separate processes.
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, UNIT],
          pool: 'forks',
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
