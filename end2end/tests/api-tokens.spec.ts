// Personal access tokens for the JSON API, as an owner meets them: the owner opens API tokens
// from the administration bar, is told next to the scopes when none is ticked, creates a
// token for `members:read` only and sees it once (with an example call), calls the API with
// it from a client with no session (members: 200 with the owner in them; the audit log: 403,
// a scope the token lacks), sees only its prefix once the page is loaded again, revokes it,
// and the API refuses it (401). Once with JavaScript and once without: the "New token" form
// is a plain form post either way, whose answer carries the token.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, hydrated, lifelineCli, password, signInWithPassword } from './fixtures';

/** What every token starts with; a token is this and 43 URL-safe base64 characters. */
const TOKEN_PREFIX = 'lifeline_pat_';

/** The serious and critical WCAG 2.2 AA violations on the page as it is now, in words. axe
 * runs in the page, so only where JavaScript runs (accessibility.spec.ts scans the pages as
 * the server sends them). */
async function violations(page: import('@playwright/test').Page): Promise<string[]> {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze();
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.id}: ${violation.help}`);
}

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript });

    test(`an owner creates an API token, sees it once, calls the API with it and revokes it (${label})`, async ({
      page,
      playwright,
    }) => {
      const slug = javascript ? 'tokens-js' : 'tokens-html';
      const owner = `owner@${slug}.test`;
      lifelineCli(['create-org', '--name', slug, '--admin-email', owner], password);
      await signInWithPassword(page, owner, javascript);
      await expect(page).toHaveURL(/\/account$/);
      if (javascript) await hydrated(page);
      const bar = page.getByRole('navigation', { name: 'Administration' });
      await bar.getByRole('link', { name: 'API tokens', exact: true }).click();
      await expect(page).toHaveURL(/\/admin\/api-tokens$/);
      if (javascript) await hydrated(page);
      await expect(page.getByRole('heading', { name: 'API tokens', level: 1 })).toBeVisible();
      await expect(page.getByText('No tokens yet.')).toBeVisible();
      await expect(page.getByRole('link', { name: '/api/v1/openapi.json' })).toHaveAttribute(
        'href',
        '/api/v1/openapi.json',
      );
      const name = page.getByLabel('Name', { exact: true });
      const lifetime = page.getByLabel(/^Lifetime in days/);
      await expect(lifetime).toHaveValue('30');
      await expect(lifetime).toHaveAttribute('min', '1');
      await expect(lifetime).toHaveAttribute('max', '366');

      // No scope ticked: refused next to the scopes, announced, the name kept, nothing made.
      await name.fill('Directory sync');
      await page.getByRole('button', { name: 'Create token' }).click();
      const scopesError = page.locator('#scopes-error');
      await expect(scopesError).toHaveAttribute('role', 'alert');
      await expect(scopesError).toContainText('Choose at least one');
      await expect(page.getByLabel('members:read')).toHaveAttribute('aria-invalid', 'true');
      await expect(page.getByLabel('members:read')).toHaveAttribute('aria-describedby', 'scopes-error');
      await expect(name).toHaveValue('Directory sync');
      await expect(page.getByText('No tokens yet.')).toBeVisible();
      if (javascript) expect(await violations(page)).toEqual([]);

      // `members:read` only: the token, this once, and an example call to this server.
      await page.getByLabel('members:read').check();
      await page.getByRole('button', { name: 'Create token' }).click();
      await expect(page.getByRole('heading', { name: 'API token created' })).toBeVisible();
      const token = (await page.locator('#api-token').innerText()).trim();
      expect(token).toMatch(/^lifeline_pat_[A-Za-z0-9_-]{43}$/);
      const origin = new URL(page.url()).origin;
      await expect(page.locator('#api-token-example')).toHaveText(
        `curl -H "Authorization: Bearer ${token}" ${origin}/api/v1/members`,
      );
      await expect(page.getByRole('link', { name: '/api/v1/openapi.json' })).toBeVisible();
      if (javascript) expect(await violations(page)).toEqual([]);

      // A client with no session, the token its only credential.
      const api = await playwright.request.newContext({ baseURL: origin });
      try {
        const bearer = { Authorization: `Bearer ${token}` };
        const members = await api.get('/api/v1/members', { headers: bearer });
        expect(members.status()).toBe(200);
        const listed = await members.json();
        expect(listed.members.map((member: { email: string }) => member.email)).toContain(owner);
        // The owner may read the audit log, but the token was not given `audit:read`.
        const audit = await api.get('/api/v1/audit/events', { headers: bearer });
        expect(audit.status()).toBe(403);
        expect(typeof (await audit.json()).error.message).toBe('string');
        expect((await api.get('/api/v1/members')).status()).toBe(401);

        // Loaded again, the page lists the token by its prefix only, used just now.
        await page.getByRole('link', { name: 'Done' }).click();
        await expect(page).toHaveURL(/\/admin\/api-tokens$/);
        if (javascript) await hydrated(page);
        const row = page.getByRole('row', { name: /Directory sync/ });
        await expect(row).toContainText(`${token.slice(0, TOKEN_PREFIX.length + 4)}…`);
        await expect(row).toContainText(owner);
        await expect(row).toContainText('members:read');
        await expect(row).toContainText('Active');
        await expect(row.getByRole('cell').nth(6)).not.toHaveText('Never');
        expect(await page.content()).not.toContain(token.slice(TOKEN_PREFIX.length));

        // Revoked, it stops working at once.
        await row.getByRole('button', { name: /^Revoke Directory sync/ }).click();
        await expect(page).toHaveURL(/\/admin\/api-tokens\?revoked=1$/);
        await expect(page.getByText('Token revoked: it no longer works.')).toBeVisible();
        await expect(row).toContainText('Revoked');
        await expect(row.getByRole('button')).toHaveCount(0);
        const refused = await api.get('/api/v1/members', { headers: bearer });
        expect(refused.status()).toBe(401);
        expect(typeof (await refused.json()).error.message).toBe('string');
      } finally {
        await api.dispose();
      }
    });
  });
}
