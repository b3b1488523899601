import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores on CI: the native code is multi-threaded, keep file parallelism low.
    maxWorkers: 2,
  },
});
