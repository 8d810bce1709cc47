// Accounts and sign-in with TOTP, as a person does it: the operator bootstraps an
// organization on the command line, the owner signs in, turns on MFA with the setup key,
// signs out, and signs in again with a code from the authenticator.
import type { Page } from '@playwright/test';
import {
  test,
  expect,
  hydrated,
  lifelineCli,
  totpCode,
  password,
  signInWithPassword,
  turnOnMfa,
} from './fixtures';

async function signInWithTotp(page: Page, email: string, setupKey: string, javascript: boolean) {
  await signInWithPassword(page, email, javascript);
  await expect(page).toHaveURL(/\/sign-in\/verify$/);
  await expect(page.getByText('Enter the 6-digit code from your authenticator app.')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Problem signing in?' })).toBeVisible();

  await page.getByLabel('Verification code').fill('12a456');
  await page.getByRole('button', { name: 'VERIFY' }).click();
  await expect(page.getByRole('alert')).toContainText('The code is 6 digits');

  // The code that turned MFA on was spent; the next time step's code is within the
  // ±1 step tolerance, as a phone clock a little ahead would show it.
  await page.getByLabel('Verification code').fill(totpCode(setupKey, Date.now() / 1000 + 30));
  await page.getByRole('button', { name: 'VERIFY' }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.locator('.account-email')).toHaveText(email);
  // Every step was a plain form's post; with JavaScript, the page's islands came alive too.
  if (javascript) await hydrated(page);
}

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript });

    test(`bootstrap, sign in, turn on TOTP, sign out, sign in with a code (${label})`, async ({ page }) => {
      const email = `owner-${javascript ? 'js' : 'html'}@acme.test`;
      const created = lifelineCli(
        ['create-org', '--name', `Acme ${javascript ? 'JS' : 'HTML'}`, '--admin-email', email],
        password,
      );
      expect(created).toContain(`with owner ${email}`);

      // Wrong password and unknown account read the same.
      await page.goto('/sign-in');
      if (javascript) await hydrated(page);
      await page.getByLabel('Email address').fill(email);
      await page.getByRole('button', { name: 'NEXT' }).click();
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'SIGN IN' }).click();
      await expect(page.getByRole('alert')).toHaveText('Incorrect email address or password.');

      await signInWithPassword(page, email, javascript);
      await expect(page).toHaveURL(/\/account$/);
      await expect(page.locator('.account-email')).toHaveText(email);
      await expect(page.getByText('Off: anyone with your password')).toBeVisible();

      const setupKey = await turnOnMfa(page);

      await page.getByRole('button', { name: 'Sign out' }).click();
      await expect(page).toHaveURL(/\/$/);
      await page.goto('/account');
      await expect(page).toHaveURL(/\/sign-in$/);

      await signInWithTotp(page, email, setupKey, javascript);
    });
  });
}

test('bad input at the first step gets a message next to the field', async ({ page }) => {
  await page.goto('/sign-in');
  await hydrated(page);
  for (const bad of ['not-an-email', 'x'.repeat(300) + '@acme.test']) {
    // The browser's own checks are for people; the server's are what count.
    await page.locator('form').evaluate((form) => form.setAttribute('novalidate', ''));
    await page.getByLabel('Email address').fill(bad);
    await page.getByRole('button', { name: 'NEXT' }).click();
    await expect(page.locator('#email-error')).toBeVisible();
    // Still the first step: the post came back to it, with the error in the address.
    await expect(page).toHaveURL(/\/sign-in(\?|$)/);
  }
});
