// Every page passes an automated WCAG 2.2 AA scan (axe-core) with no serious or critical
// violation, with JavaScript and without, signed out and signed in as an owner with MFA on
// (so that every admin page shows its content). The pages are read from the app's routes in
// app/src/lib.rs, so a new page is scanned as soon as it exists.
//
// axe runs in the page, so "without JavaScript" is the page with the app's own script and
// wasm blocked: the server-rendered page, never hydrated, and its forms posted by the
// browser, as a visitor without JavaScript has them (only <noscript> content differs).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import { test, expect, hydrated, lifelineCli, password, signInWithPassword, turnOnMfa } from './fixtures';

/** Every routed path (`path!("…")`), and the home page (`StaticSegment("")`). */
function everyPage(): string[] {
  const source = readFileSync(path.resolve(__dirname, '../../app/src/lib.rs'), 'utf8');
  const routed = [...source.matchAll(/path!\("([^"]+)"\)/g)].map((match) => match[1]);
  expect(routed.length).toBeGreaterThan(20);
  return ['/', ...routed];
}

/** The rules of WCAG 2.0, 2.1 and 2.2 at levels A and AA. */
const WCAG_AA = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

/** Scans the page as it is now; returns the serious and critical violations, in words. */
async function violations(page: import('@playwright/test').Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(WCAG_AA).analyze();
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map(
      (violation) =>
        `${page.url()}: ${violation.id} (${violation.impact}): ${violation.help}; at ` +
        violation.nodes.map((node) => node.target.join(' ')).join(', '),
    );
}

/** Opens every page and scans what it shows (a page a visitor may not see redirects, and
 * the page it lands on is scanned once). */
async function scanEveryPage(page: import('@playwright/test').Page, javascript: boolean): Promise<string[]> {
  const found: string[] = [];
  const scanned = new Set<string>();
  for (const route of everyPage()) {
    await page.goto(route);
    if (javascript) await hydrated(page);
    const landed = new URL(page.url()).pathname;
    if (scanned.has(landed)) continue;
    scanned.add(landed);
    found.push(...(await violations(page)));
  }
  expect(scanned.size, [...scanned].join(' ')).toBeGreaterThan(5);
  return found;
}

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    if (!javascript) {
      test.beforeEach(async ({ page }) => {
        await page.route(/\/pkg\/lifeline\.(js|wasm)$/, (route) => route.abort());
      });
    }

    test(`every page signed out has no serious or critical WCAG 2.2 AA violation (${label})`, async ({ page }) => {
      test.setTimeout(180_000);
      expect(await scanEveryPage(page, javascript)).toEqual([]);
    });

    test(`every page an owner sees has no serious or critical WCAG 2.2 AA violation (${label})`, async ({ page }) => {
      test.setTimeout(240_000);
      const slug = javascript ? 'axe-js' : 'axe-html';
      const owner = `owner@${slug}.test`;
      lifelineCli(['create-org', '--name', slug, '--admin-email', owner], password);
      lifelineCli(['create-user', '--org', slug, '--email', `member@${slug}.test`, '--role', 'member'], password);
      await signInWithPassword(page, owner, javascript);
      await expect(page).toHaveURL(/\/account$/);
      if (javascript) await hydrated(page);
      await turnOnMfa(page);
      expect(await scanEveryPage(page, javascript)).toEqual([]);
    });

    test(`the scan finds a violation where there is one (${label})`, async ({ page }) => {
      await page.goto('/sign-in');
      if (javascript) await hydrated(page);
      // The email field loses its label: a critical violation (WCAG 1.3.1, 4.1.2).
      await page.locator('label[for="email"]').evaluate((label) => label.remove());
      const found = await violations(page);
      expect(found.join('\n')).toMatch(/label \(critical\)/);
    });

    test(`form errors are announced and tied to their fields (${label})`, async ({ page }) => {
      await page.goto('/sign-in');
      if (javascript) await hydrated(page);
      await page.getByLabel('Email address').fill('not an email');
      // The browser's own check would stop the post: the server's message is under test.
      await page.locator('form').evaluate((form) => form.setAttribute('novalidate', ''));
      await page.getByRole('button', { name: 'NEXT' }).click();
      const message = page.locator('#email-error');
      await expect(message).toHaveAttribute('role', 'alert');
      await expect(message).not.toBeEmpty();
      await expect(page.getByLabel('Email address')).toHaveAttribute('aria-describedby', /email-error/);
      await expect(page.getByLabel('Email address')).toHaveAttribute('aria-invalid', 'true');
      expect(await violations(page)).toEqual([]);
    });
  });
}
