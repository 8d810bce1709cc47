// The first run in the browser: a server with no organization prints a one-time setup link;
// the person who started it opens the link, creates the organization and its owner, lands
// on setting up MFA signed in, and turns it on. The link then says the installation is set
// up. With JavaScript and without, each against a server of its own on a fresh database.
import { test, expect, hydrated, password, turnOnMfa } from './fixtures';
import { startLifeline, type Lifeline } from '../global-setup';

for (const javascript of [true, false]) {
  test.describe(`first run ${javascript ? 'with' : 'without'} JavaScript`, () => {
    test.use({ javaScriptEnabled: javascript });
    let lifeline: Lifeline;

    test.beforeAll(async () => {
      lifeline = await startLifeline();
    });

    test.afterAll(async () => {
      await lifeline.stop();
    });

    test('the printed link sets up the organization and its owner, once', async ({ page }) => {
      // Logged just after the server starts listening.
      await expect.poll(() => lifeline.log()).toMatch(/\/setup\?token=/);
      const link = lifeline.log().match(/open (http:\/\/\S+\/setup\?token=[A-Za-z0-9_-]+)/)?.[1];
      expect(link, lifeline.log()).toBeTruthy();
      await page.goto(link!);
      if (javascript) await hydrated(page);
      await expect(page.getByRole('heading', { name: 'Set up Lifeline' })).toBeVisible();

      // Two different passwords: refused next to the field, nothing created.
      await page.getByLabel('Organization name').fill('First Run Org');
      await page.getByLabel('Your email address').fill('owner@first-run.test');
      await page.getByLabel('Password', { exact: true }).fill(password);
      await page.getByLabel('Password again').fill('not the same password');
      await page.getByRole('button', { name: 'Create organization' }).click();
      await expect(page.locator('#confirm-error')).toContainText('The two passwords differ');

      await page.getByLabel('Organization name').fill('First Run Org');
      await page.getByLabel('Your email address').fill('owner@first-run.test');
      await page.getByLabel('Password', { exact: true }).fill(password);
      await page.getByLabel('Password again').fill(password);
      await page.getByRole('button', { name: 'Create organization' }).click();
      await expect(page).toHaveURL(/\/account\/mfa\/setup$/);
      await page.goto(`${lifeline.baseUrl}/account`);
      await expect(page.getByText('owner@first-run.test')).toBeVisible();
      if (javascript) await hydrated(page);
      await turnOnMfa(page);

      // Used: the same link now says so, and offers signing in.
      await page.goto(link!);
      await expect(page.getByRole('alert')).toContainText('already set up');
      await expect(page.getByRole('button', { name: 'Create organization' })).toHaveCount(0);
    });
  });
}
