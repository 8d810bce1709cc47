// The `test` every journey imports: Playwright's, pointed at the server global-setup started.
import { test as base, expect, type Page } from '@playwright/test';

export const test = base.extend({
  baseURL: async ({}, use) => {
    const url = process.env.LIFELINE_BASE_URL;
    if (!url) throw new Error('LIFELINE_BASE_URL is not set: global-setup.ts did not run');
    await use(url);
  },
});

export { expect };

/** Waits until the page's islands are interactive (the wasm has loaded and hydrated them). */
export async function hydrated(page: import('@playwright/test').Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', '');
}

import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { binary, secretKeyFileOf } from '../global-setup';

/** Runs the `lifeline` command line against the test server's database (or another one),
 * with that server's secret key, password on stdin. */
export function lifelineCli(
  args: string[],
  password: string,
  databaseUrl: string = process.env.LIFELINE_E2E_DATABASE_URL ?? '',
): string {
  const run = spawnSync(binary, args, {
    input: `${password}\n`,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      LIFELINE_SECRET_KEY_FILE: secretKeyFileOf(databaseUrl),
    },
    encoding: 'utf8',
  });
  if (run.status !== 0) {
    throw new Error(`lifeline ${args.join(' ')} failed (${run.status}): ${run.stderr}`);
  }
  return run.stdout;
}

/** The RFC 6238 code (SHA-1, 6 digits, 30 s) an authenticator app shows for `setupKey`. */
export function totpCode(setupKey: string, unixSeconds: number = Date.now() / 1000): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of setupKey.replace(/[\s=]/g, '').toUpperCase()) {
    const value = alphabet.indexOf(char);
    if (value < 0) throw new Error(`not base32: ${char}`);
    bits += value.toString(2).padStart(5, '0');
  }
  const secret = Buffer.from(bits.match(/.{8}/g)!.map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac('sha1', secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const number = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return number.toString().padStart(6, '0');
}

// The steps every journey shares: signing in with a password, and turning on TOTP.

export const password = 'correct horse battery staple';

export async function signInWithPassword(page: Page, email: string, javascript: boolean) {
  await page.goto('/sign-in');
  if (javascript) await hydrated(page);
  await page.getByLabel('Email address').fill(email);
  await page.getByRole('button', { name: 'NEXT' }).click();
  await expect(page).toHaveURL(/\/sign-in\/password$/);
  await expect(page.getByText(email)).toBeVisible();
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'SIGN IN' }).click();
}

export async function turnOnMfa(page: Page): Promise<string> {
  await page.getByRole('link', { name: 'Set up' }).click();
  await expect(page).toHaveURL(/\/account\/mfa\/setup$/);
  await expect(page.getByRole('img', { name: 'QR code for your authenticator app' }).locator('svg')).toBeVisible();
  const setupKey = (await page.locator('.setup-key').innerText()).trim();
  expect(setupKey).toMatch(/^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$/);

  // A wrong code is refused next to the field, and MFA stays off.
  const wrong = totpCode(setupKey) === '000000' ? '111111' : '000000';
  await page.getByLabel('Verification code').fill(wrong);
  await page.getByRole('button', { name: 'Turn on' }).click();
  await expect(page.getByRole('alert')).toContainText('That code is not valid');

  await page.getByLabel('Verification code').fill(totpCode(setupKey));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByText('On: signing in asks for a code')).toBeVisible();
  return setupKey;
}


// Backup codes and the authenticator at sign-in, as a member meets them.

export async function signOut(page: Page) {
  await page.goto('/account');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/$/);
}

/** Signs in with the password, then takes "Problem signing in?" to the backup-code field. */
export async function reachBackupCodeStep(page: Page, email: string, javascript: boolean) {
  await signInWithPassword(page, email, javascript);
  await expect(page).toHaveURL(/\/sign-in\/verify$/);
  await page.getByRole('link', { name: 'Problem signing in?' }).click();
  await expect(page).toHaveURL(/\/sign-in\/help$/);
  await page.getByRole('link', { name: 'Use Backup Verification code' }).click();
  await expect(page).toHaveURL(/\/sign-in\/backup-code$/);
}

export async function enterBackupCode(page: Page, code: string) {
  await page.getByLabel('Backup verification code').fill(code);
  await page.getByRole('button', { name: 'VERIFY' }).click();
}

/** Signs in with the password and the authenticator's code. The code that turned MFA on was
 * spent: the next time step's code is within the ±1 step tolerance. */
export async function signInWithTotp(page: Page, email: string, setupKey: string, javascript: boolean) {
  await signInWithPassword(page, email, javascript);
  await expect(page).toHaveURL(/\/sign-in\/verify$/);
  await page.getByLabel('Verification code').fill(totpCode(setupKey, Date.now() / 1000 + 30));
  await page.getByRole('button', { name: 'VERIFY' }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.locator('.account-email')).toHaveText(email);
}
