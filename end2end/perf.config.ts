import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// `scripts/bench-tti.sh` (make bench, part 8): time to interactive in ./perf, against the real
// `lifeline` binary as playwright.config.ts starts it. Not part of `make test`. Slow 4G with a
// 4× slower CPU makes a single load take tens of seconds (minutes for a debug build), hence the
// long timeout; one worker, so that no other page shares the CPU with a measurement.
export default defineConfig(base, {
  testDir: './perf',
  timeout: 60 * 60_000,
  workers: 1,
  // Slow is the point here.
  reportSlowTests: null,
});
