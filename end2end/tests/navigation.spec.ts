// The administration bar: each role sees the areas its role opens,
// on every page, and the area shown is marked for the eye and for screen readers
// (aria-current="page"); an owner moves through every area by the bar alone. With
// JavaScript (client-side moves) and without (each a page the server sends).
import { test, expect, hydrated, lifelineCli, password, signInWithPassword } from './fixtures';

/** Every area of the bar, as an owner sees it. */
const AREAS: [string, RegExp][] = [
  ['Overview', /\/admin$/],
  ['Manage members', /\/admin\/members$/],
  ['Groups', /\/admin\/groups$/],
  ['Backup-code policy', /\/admin\/policy$/],
  ['Recovery codes', /\/admin\/recovery$/],
  ['Alerts', /\/admin\/alerts$/],
  ['Audit log', /\/admin\/audit$/],
  ['Compliance report', /\/admin\/compliance$/],
  ['Webhooks', /\/admin\/webhooks$/],
  ['API tokens', /\/admin\/api-tokens$/],
  ['Data backup', /\/admin\/backup$/],
];

/** Who sees which areas, under the default policy (admins do not request backups); API
 * tokens are for owners and admins alike; the help desk helps members back in; auditors
 * read (README, "Roles"). */
const ROLES: [string, string[]][] = [
  ['owner', AREAS.map(([name]) => name)],
  ['admin', AREAS.map(([name]) => name).filter((name) => name !== 'Webhooks' && name !== 'Data backup')],
  ['helpdesk', ['Overview', 'Manage members', 'Groups', 'Recovery codes']],
  ['auditor', ['Overview', 'Manage members', 'Groups', 'Backup-code policy', 'Alerts', 'Audit log', 'Compliance report']],
  ['member', []],
];

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript });

    test(`each role sees the areas it may open (${label})`, async ({ browser }) => {
      const slug = javascript ? 'nav-js' : 'nav-html';
      lifelineCli(['create-org', '--name', slug, '--admin-email', `owner@${slug}.test`], password);
      for (const role of ['admin', 'helpdesk', 'auditor', 'member']) {
        lifelineCli(['create-user', '--org', slug, '--email', `${role}@${slug}.test`, '--role', role], password);
      }
      for (const [role, areas] of ROLES) {
        const context = await browser.newContext({ javaScriptEnabled: javascript, baseURL: process.env.LIFELINE_BASE_URL });
        const page = await context.newPage();
        await signInWithPassword(page, `${role}@${slug}.test`, javascript);
        await expect(page).toHaveURL(/\/account$/);
        const bar = page.getByRole('navigation', { name: 'Administration' });
        if (areas.length === 0) {
          await expect(bar).toHaveCount(0);
        } else {
          await expect(bar.getByRole('link')).toHaveText(areas);
        }
        await context.close();
      }
    });

    test(`an owner moves through every area by the bar (${label})`, async ({ page }) => {
      const slug = javascript ? 'nav-walk-js' : 'nav-walk-html';
      lifelineCli(['create-org', '--name', slug, '--admin-email', `owner@${slug}.test`], password);
      await signInWithPassword(page, `owner@${slug}.test`, javascript);
      await expect(page).toHaveURL(/\/account$/);
      const bar = page.getByRole('navigation', { name: 'Administration' });
      for (const [name, url] of AREAS) {
        if (javascript) await hydrated(page);
        await bar.getByRole('link', { name, exact: true }).click();
        await expect(page).toHaveURL(url);
        await expect(bar.getByRole('link', { name, exact: true })).toHaveAttribute('aria-current', 'page');
        await expect(bar.locator('[aria-current="page"]')).toHaveCount(1);
      }
    });
  });
}
