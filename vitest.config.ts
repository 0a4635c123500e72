import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // End-to-end tests wait on GitHub-style write throttling (a write a second) and real
    // sandboxed test runs; on a loaded two-core machine a job can take a minute.
    testTimeout: 180_000,
    hookTimeout: 60_000,
    // Sandbox and end-to-end tests spawn real processes; two cores, so keep files from
    // starving each other.
    maxWorkers: 2,
  },
});
