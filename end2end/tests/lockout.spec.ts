// A member locks their password with wrong guesses; even the right one is refused then.
// An owner sees the lock on the members page and unlocks them, and the member signs in.
import { test, expect, hydrated, lifelineCli, signInWithPassword } from './fixtures';

const password = 'correct horse battery staple';

test('five wrong passwords lock the account until an owner unlocks it', async ({ page, browser, baseURL }) => {
  const owner = 'owner@lockout.test';
  const member = 'member@lockout.test';
  lifelineCli(['create-org', '--name', 'Lockout Org', '--admin-email', owner], password);
  lifelineCli(['create-user', '--org', 'lockout-org', '--email', member, '--role', 'member'], password);

  // Five wrong passwords, each refused with the one answer for every failure.
  const memberPage = await browser.newPage({ baseURL });
  await memberPage.goto('/sign-in');
  await hydrated(memberPage);
  await memberPage.getByLabel('Email address').fill(member);
  await memberPage.getByRole('button', { name: 'NEXT' }).click();
  await expect(memberPage).toHaveURL(/\/sign-in\/password$/);
  for (let attempt = 1; attempt <= 5; attempt++) {
    await memberPage.getByLabel('Password').fill(`wrong guess ${attempt}`);
    await memberPage.getByRole('button', { name: 'SIGN IN' }).click();
    await expect(memberPage.getByRole('alert')).toHaveText('Incorrect email address or password.');
  }

  // The owner sees the lock on the members page.
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByRole('link', { name: 'Manage members' }).click();
  await expect(page).toHaveURL(/\/admin\/members$/);
  const row = page.getByRole('row').filter({ hasText: member });
  await expect(async () => {
    await page.reload();
    await expect(row.locator('.sign-in-state')).toContainText('Locked: password until', { timeout: 1000 });
  }).toPass({ timeout: 10_000 });

  // Locked: the right password gets the same answer as a wrong one.
  await memberPage.getByLabel('Password').fill(password);
  await memberPage.getByRole('button', { name: 'SIGN IN' }).click();
  await expect(memberPage.getByRole('alert')).toHaveText('Incorrect email address or password.');
  // Still the password step: the post came back to it, with the answer in the address.
  await expect(memberPage).toHaveURL(/\/sign-in\/password(\?|$)/);

  // The owner unlocks; the member signs in.
  await hydrated(page);
  await page.getByRole('button', { name: `Unlock sign-in of ${member}` }).click();
  await expect(row.locator('.sign-in-state')).toHaveText('OK');
  await expect(page.getByRole('button', { name: `Unlock sign-in of ${member}` })).toHaveCount(0);
  await memberPage.getByLabel('Password').fill(password);
  await memberPage.getByRole('button', { name: 'SIGN IN' }).click();
  await expect(memberPage).toHaveURL(/\/account$/);
  await expect(memberPage.locator('.account-email')).toHaveText(member);
  await memberPage.close();

  // The audit log has the lock and the unlock.
  await page.goto('/admin/audit');
  await expect(page.locator('.audit-action', { hasText: 'password.locked' })).toHaveCount(1);
  await expect(page.locator('.audit-action', { hasText: 'member.unlocked' })).toHaveCount(1);
});
