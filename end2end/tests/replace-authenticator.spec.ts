// A new phone without turning MFA off (issue 16, item 6): the member sets up the new
// authenticator beside the old one, which still signs in until the new one's code confirms
// it; then only the new one works, and the backup codes stayed. Once with JavaScript and
// once without.
import {
  test,
  expect,
  hydrated,
  lifelineCli,
  password,
  signInWithPassword,
  signInWithTotp,
  signOut,
  totpCode,
  turnOnMfa,
} from './fixtures';

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript });

    test(`a member replaces their authenticator and MFA never turns off (${label})`, async ({ page }) => {
      const email = `phone-${javascript ? 'js' : 'html'}@replace.test`;
      lifelineCli(['create-org', '--name', `Replace ${javascript ? 'JS' : 'HTML'}`, '--admin-email', email], password);
      await signInWithPassword(page, email, javascript);
      await expect(page).toHaveURL(/\/account$/);
      const oldKey = await turnOnMfa(page);
      await page.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }).click();
      await page.getByLabel('I have saved these codes').check();
      await page.getByRole('button', { name: 'Done' }).click();
      await expect(page.locator('#recovery .codes-status')).toHaveText('10 of 10 codes left.');

      // The new phone's key, shown again on a reload.
      await page.getByRole('link', { name: 'Replace your authenticator' }).click();
      await expect(page).toHaveURL(/\/account\/mfa\/replace$/);
      if (javascript) await hydrated(page);
      const newKey = (await page.locator('.setup-key').innerText()).trim();
      expect(newKey).not.toBe(oldKey);
      await page.reload();
      await expect(page.locator('.setup-key')).toHaveText(newKey);

      // Not confirmed yet: the old authenticator still signs in, and MFA is on throughout.
      await signOut(page);
      await signInWithTotp(page, email, oldKey, javascript);
      await expect(page.getByText('On: signing in asks for a code')).toBeVisible();

      // A code from the old one does not confirm the new one.
      await page.goto('/account/mfa/replace');
      if (javascript) await hydrated(page);
      await expect(page.locator('.setup-key')).toHaveText(newKey);
      const oldCode = totpCode(oldKey);
      if (oldCode !== totpCode(newKey)) {
        await page.getByLabel('Verification code').fill(oldCode);
        await page.getByRole('button', { name: 'Replace' }).click();
        await expect(page.getByRole('alert')).toContainText('That code is not valid');
      }
      await expect(page.getByLabel(/Keep my backup codes/)).toBeChecked();
      await page.getByLabel('Verification code').fill(totpCode(newKey));
      await page.getByRole('button', { name: 'Replace' }).click();
      await expect(page).toHaveURL(/\/account\?authenticator=replaced$/);
      await expect(page.getByRole('status').filter({ hasText: 'Your new authenticator is in use' })).toBeVisible();
      await expect(page.locator('#recovery .codes-status')).toHaveText('10 of 10 codes left.');
      // The member is told, with a way to say it was not them.
      await page.goto('/account/notifications');
      await expect(page.locator('body')).toContainText('Your authenticator was replaced');
      await signOut(page);

      // Now the old authenticator is refused and the new one signs in.
      await signInWithPassword(page, email, javascript);
      await expect(page).toHaveURL(/\/sign-in\/verify$/);
      const oldNext = totpCode(oldKey, Date.now() / 1000 + 30);
      if (oldNext !== totpCode(newKey, Date.now() / 1000 + 30)) {
        await page.getByLabel('Verification code').fill(oldNext);
        await page.getByRole('button', { name: 'VERIFY' }).click();
        await expect(page.getByRole('alert')).toContainText('not valid');
      }
      await page.getByLabel('Verification code').fill(totpCode(newKey, Date.now() / 1000 + 30));
      await page.getByRole('button', { name: 'VERIFY' }).click();
      await expect(page).toHaveURL(/\/account$/);
    });
  });
}
