import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// `make screenshots`: the README's pictures (docs/images/*.png), taken by the journey in
// ./screenshots against the real `lifeline` binary on a fresh database. Everything else
// (Debian's Chromium and its launch options, the global setup that starts the server) is
// playwright.config.ts's; only the folder differs, so `make test` never takes pictures.
export default defineConfig(base, {
  testDir: './screenshots',
});
