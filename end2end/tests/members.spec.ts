// An owner manages the organization's members from the dashboard.
import { test, expect, hydrated, lifelineCli } from './fixtures';

const password = 'correct horse battery staple';

test('an owner adds a member, who signs in, and then removes them', async ({ page }) => {
  lifelineCli(['create-org', '--name', 'Members Inc', '--admin-email', 'owner@members.test'], password);

  await page.goto('/sign-in');
  await hydrated(page);
  await page.getByLabel('Email address').fill('owner@members.test');
  await page.getByRole('button', { name: 'NEXT' }).click();
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'SIGN IN' }).click();
  await page.getByRole('link', { name: 'Manage members' }).click();
  await expect(page).toHaveURL(/\/admin\/members$/);

  // A password that is too short is refused next to its field; nobody is added.
  await page.getByLabel('Email address').fill('new@members.test');
  await page.getByLabel('Initial password').fill('short');
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.locator('#password-error')).toHaveText('Use at least 10 characters.');
  await expect(page.getByRole('cell', { name: 'new@members.test', exact: true })).toHaveCount(0);

  await page.getByLabel('Initial password').fill(password);
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.getByRole('cell', { name: 'new@members.test', exact: true })).toBeVisible();

  // The new member signs in and sees no admin tools.
  const member = await page.context().browser()!.newPage();
  await member.goto(page.url().replace(/\/admin\/members$/, '/sign-in'));
  await member.getByLabel('Email address').fill('new@members.test');
  await member.getByRole('button', { name: 'NEXT' }).click();
  await member.getByLabel('Password').fill(password);
  await member.getByRole('button', { name: 'SIGN IN' }).click();
  await expect(member.locator('.account-email')).toHaveText('new@members.test');
  await expect(member.getByRole('link', { name: 'Manage members' })).toHaveCount(0);

  await page.getByRole('button', { name: 'Remove new@members.test' }).click();
  await expect(page.getByRole('cell', { name: 'new@members.test', exact: true })).toHaveCount(0);

  // Removed means signed out too.
  await member.goto(member.url());
  await expect(member).toHaveURL(/\/sign-in$/);
  await member.close();
});
