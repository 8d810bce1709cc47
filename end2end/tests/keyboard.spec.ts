// A keyboard-only journey (no mouse, no clicks): an owner signs in, turns on MFA, generates
// backup codes and confirms they are saved, signs out, and signs in again with one of the
// codes. Every control is reached with Tab (or Shift+Tab) and used with Enter or Space, so a
// control that cannot take focus, or sits in a focus trap, fails the journey.
import type { Locator, Page } from '@playwright/test';
import { test, expect, hydrated, lifelineCli, password, totpCode } from './fixtures';

/** Tabs until `target` has the focus (at most 60 presses). */
async function tabTo(page: Page, target: Locator, key: 'Tab' | 'Shift+Tab' = 'Tab') {
  await expect(target).toBeVisible();
  for (let press = 0; press < 60; press++) {
    if (await target.evaluate((element) => element === document.activeElement)) return;
    await page.keyboard.press(key);
  }
  throw new Error(`Tab never reached ${target}`);
}

/** Tabs to a field and types into it. */
async function typeInto(page: Page, field: Locator, text: string) {
  await tabTo(page, field);
  await page.keyboard.type(text);
}

/** Tabs to a button or link and presses Enter. */
async function activate(page: Page, control: Locator) {
  await tabTo(page, control);
  await page.keyboard.press('Enter');
}

async function signInWithPasswordByKeyboard(page: Page, email: string) {
  await page.goto('/sign-in');
  await hydrated(page);
  await typeInto(page, page.getByLabel('Email address'), email);
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/sign-in\/password$/);
  await typeInto(page, page.getByLabel('Password'), password);
  await page.keyboard.press('Enter');
}

test('an owner turns on MFA, saves codes and signs in with one, by keyboard alone', async ({ page }) => {
  test.setTimeout(120_000);
  const owner = 'owner@keyboard.test';
  lifelineCli(['create-org', '--name', 'Keyboard Org', '--admin-email', owner], password);

  await signInWithPasswordByKeyboard(page, owner);
  await expect(page).toHaveURL(/\/account$/);
  await hydrated(page);

  // Turn on MFA.
  await activate(page, page.getByRole('link', { name: 'Set up' }));
  await expect(page).toHaveURL(/\/account\/mfa\/setup$/);
  await hydrated(page);
  const setupKey = (await page.locator('.setup-key').innerText()).trim();
  await typeInto(page, page.getByLabel('Verification code'), totpCode(setupKey));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByText('On: signing in asks for a code')).toBeVisible();
  await hydrated(page);

  // Generate codes, tick "saved" with Space, and finish.
  await activate(page, page.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }));
  await expect(page).toHaveURL(/\/account\/backup-codes$/);
  await hydrated(page);
  const codes = (await page.locator('.codes-sheet .backup-code').allInnerTexts()).map((code) => code.trim());
  expect(codes).toHaveLength(10);
  const saved = page.getByLabel('I have saved these codes');
  await tabTo(page, saved);
  await page.keyboard.press('Space');
  await expect(saved).toBeChecked();
  await activate(page, page.getByRole('button', { name: 'Done' }));
  await expect(page).toHaveURL(/\/account\?saved=1$/);
  await hydrated(page);

  // Sign out, and back in with the first code.
  await activate(page, page.getByRole('button', { name: 'Sign out' }));
  await expect(page).toHaveURL(/\/$/);
  await signInWithPasswordByKeyboard(page, owner);
  await expect(page).toHaveURL(/\/sign-in\/verify$/);
  await hydrated(page);
  await activate(page, page.getByRole('link', { name: 'Problem signing in?' }));
  await expect(page).toHaveURL(/\/sign-in\/help$/);
  await hydrated(page);
  await activate(page, page.getByRole('link', { name: 'Use Backup Verification code' }));
  await expect(page).toHaveURL(/\/sign-in\/backup-code$/);
  await hydrated(page);
  await typeInto(page, page.getByLabel('Backup verification code'), codes[0]);
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/account\/recovered$/);
  await expect(page.locator('.codes-left')).toHaveText('You have 9 backup verification codes left.');
});
