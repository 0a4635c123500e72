import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Sandbox and end-to-end tests spawn real processes; two cores, so keep files from
    // starving each other.
    maxWorkers: 2,
  },
});
