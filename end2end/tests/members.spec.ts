// An owner manages the organization's members from the dashboard.
import { test, expect, hydrated, lifelineCli, signInWithPassword, turnOnMfa } from './fixtures';

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
  // The refused form comes back with what was typed, but for the password, which is never kept.
  await expect(page.getByLabel('Email address')).toHaveValue('new@members.test');
  await expect(page.getByLabel('Initial password')).toHaveValue('');

  await page.getByLabel('Initial password').fill(password);
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.getByRole('cell', { name: 'new@members.test', exact: true })).toBeVisible();

  // The new member signs in and sees no admin tools.
  const member = await page.context().browser()!.newPage();
  await member.goto(new URL('/sign-in', page.url()).href);
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

test('an owner sees a member’s codes, revokes them, resets their MFA and makes them an admin', async ({ page, browser, baseURL }) => {
  const owner = 'owner@console.test';
  const member = 'member@console.test';
  lifelineCli(['create-org', '--name', 'Console Org', '--admin-email', owner], password);
  lifelineCli(['create-user', '--org', 'console-org', '--email', member, '--role', 'member'], password);

  // The member turns on MFA and generates codes.
  const memberPage = await browser.newPage({ baseURL });
  await signInWithPassword(memberPage, member, true);
  await expect(memberPage).toHaveURL(/\/account$/);
  await turnOnMfa(memberPage);
  await memberPage.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }).click();
  await expect(memberPage.locator('.codes-sheet .backup-code')).toHaveCount(10);
  await memberPage.close();

  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.goto('/admin/members');
  await hydrated(page);
  const row = page.locator('tr', { hasText: member });
  await expect(row.locator('td').nth(2)).toHaveText('On');
  await expect(row.locator('.codes-left')).toHaveText('10');

  // Search narrows the list to matching emails.
  await page.getByLabel('Search by email').fill('member@');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page).toHaveURL(/\/admin\/members\?q=member%40$/);
  await expect(page.locator('tbody tr')).toHaveCount(1);

  await page.getByRole('button', { name: `Revoke codes of ${member}` }).click();
  await expect(row.locator('.codes-left')).toHaveText('None');
  await page.getByRole('button', { name: `Reset MFA of ${member}` }).click();
  await expect(row.locator('td').nth(2)).toHaveText('Off');
  await page.getByLabel(`Role of ${member}`, { exact: true }).selectOption('admin');
  await page.getByRole('button', { name: `Change role of ${member}` }).click();
  await expect(row.locator('td').nth(1)).toHaveText('Admin');

  // The member must set MFA up again at their next sign-in.
  const again = await browser.newPage({ baseURL });
  await signInWithPassword(again, member, true);
  await expect(again).toHaveURL(/\/account\/mfa\/setup$/);
  await again.close();
});
