// An owner who gave their password too long ago confirms it before an administrator change,
// and lands back on the page they were on. Against a server of its own whose window is
// three seconds, so the journey does not wait ten minutes.
import { test, expect, hydrated, lifelineCli, signInWithPassword } from './fixtures';
import { startLifeline, type Lifeline } from '../global-setup';

const password = 'correct horse battery staple';
let lifeline: Lifeline;

test.beforeAll(async () => {
  lifeline = await startLifeline({ LIFELINE_REAUTHENTICATE_AFTER_SECONDS: '3' });
});

test.afterAll(async () => {
  await lifeline.stop();
});

test('an administrator change after the window asks for the password, then goes through', async ({ browser }) => {
  const owner = 'owner@confirm.test';
  lifelineCli(['create-org', '--name', 'Confirm Org', '--admin-email', owner], password, lifeline.databaseUrl);
  const context = await browser.newContext({ baseURL: lifeline.baseUrl });
  const page = await context.newPage();
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByRole('link', { name: 'Manage members' }).click();
  await expect(page).toHaveURL(/\/admin\/members$/);
  await hydrated(page);
  await page.waitForTimeout(3500);

  // Too long since the password: refused, nobody added, and a way to confirm it.
  await page.getByLabel('Email address').fill('new@confirm.test');
  await page.getByLabel('Initial password').fill(password);
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.getByRole('alert')).toContainText('confirm your password');
  await expect(page.getByRole('cell', { name: 'new@confirm.test', exact: true })).toHaveCount(0);
  await page.getByRole('link', { name: "Confirm it's you" }).click();
  await expect(page).toHaveURL(/\/account\/confirm\?next=%2Fadmin%2Fmembers$/);

  // A wrong password is refused next to the field; the right one goes back to the page.
  await hydrated(page);
  await page.getByLabel('Password').fill('not my password');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.locator('#password-error')).toHaveText('That password is not correct.');
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page).toHaveURL(/\/admin\/members$/);

  await page.getByLabel('Email address').fill('new@confirm.test');
  await page.getByLabel('Initial password').fill(password);
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.getByRole('cell', { name: 'new@confirm.test', exact: true })).toBeVisible();
  await context.close();
});
