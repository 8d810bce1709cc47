// The `test` every journey imports: Playwright's, pointed at the server global-setup started.
import { test as base, expect } from '@playwright/test';

export const test = base.extend({
  baseURL: async ({}, use) => {
    const url = process.env.LIFELINE_BASE_URL;
    if (!url) throw new Error('LIFELINE_BASE_URL is not set: global-setup.ts did not run');
    await use(url);
  },
});

export { expect };

/** Waits until the wasm app has hydrated the server-rendered page. */
export async function hydrated(page: import('@playwright/test').Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', '');
}
