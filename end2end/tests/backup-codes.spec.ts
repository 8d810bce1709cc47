// Backup verification codes, as a member meets them: turn on MFA, generate a set, save it
// (download, copy, print), sign out, sign in with code #3 through "Problem signing in?",
// see one code fewer, find the same code refused, regenerate, and find the old set dead and
// the new one working; and a reloaded sheet that does not replace the set just saved. Once
// with JavaScript and once without.
import { readFileSync } from 'node:fs';
import type { BrowserContext, Page } from '@playwright/test';
import {
  test,
  expect,
  enterBackupCode,
  hydrated,
  lifelineCli,
  password,
  reachBackupCodeStep,
  signInWithPassword,
  signOut,
  turnOnMfa,
} from './fixtures';

const codePattern = /^\d{4} \d{4} \d{4}$/;

/** The codes on the sheet, slot 1 first. */
async function codesOnSheet(page: Page): Promise<string[]> {
  const codes = (await page.locator('.codes-sheet .backup-code').allInnerTexts()).map((c) => c.trim());
  expect(codes).toHaveLength(10);
  for (const code of codes) expect(code).toMatch(codePattern);
  expect(new Set(codes).size).toBe(10);
  return codes;
}

/** Downloads the sheet and returns the file's name and text. */
async function download(page: Page): Promise<{ name: string; text: string }> {
  const [file] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download' }).click(),
  ]);
  const path = await file.path();
  return { name: file.suggestedFilename(), text: readFileSync(path, 'utf8') };
}

/** Confirms the codes were saved and returns to the account page. */
async function confirmSaved(page: Page) {
  await page.getByLabel('I have saved these codes').check();
  await page.getByRole('button', { name: 'Done' }).click();
  await expect(page).toHaveURL(/\/account\?saved=1$/);
}

/** The owner's way to the backup-code field: the page names them as who to ask when the
 * codes are gone. */
async function reachOwnBackupCodeStep(page: Page, email: string, javascript: boolean) {
  await reachBackupCodeStep(page, email, javascript);
  await expect(page.getByRole('link', { name: email })).toBeVisible();
}

async function signInWithBackupCode(page: Page, email: string, code: string, javascript: boolean, left: number) {
  await reachOwnBackupCodeStep(page, email, javascript);
  await enterBackupCode(page, code);
  await expect(page).toHaveURL(/\/account\/recovered$/);
  await expect(page.locator('.codes-left')).toHaveText(
    `You have ${left} backup verification code${left === 1 ? '' : 's'} left.`,
  );
}

/** Generates a set from the account panel's "MFA Recovery Modes" and checks the sheet. */
async function generateFromAccount(page: Page, email: string, javascript: boolean): Promise<string[]> {
  await page.goto('/account');
  const recovery = page.locator('#recovery');
  await expect(recovery.getByRole('heading', { name: 'MFA Recovery Modes' })).toBeVisible();
  // The codes arrive in the answer to the form's post, which no cache may keep.
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/account/backup-codes') && r.request().method() === 'POST'),
    recovery.getByRole('button', { name: 'Generate New Codes' }).click(),
  ]);
  expect(answer.headers()['cache-control']).toBe('no-store');
  await expect(page).toHaveURL(/\/account\/backup-codes$/);
  if (javascript) await hydrated(page);
  await expect(page.getByRole('heading', { name: 'Your backup verification codes' })).toBeVisible();
  await expect(page.locator('.sheet-account')).toContainText(email);
  return codesOnSheet(page);
}

async function allowClipboard(context: BrowserContext, baseURL: string | undefined) {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseURL });
}

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript });

    test(`generate, save, sign in with code #3, regenerate (${label})`, async ({ page, context, baseURL }) => {
      const email = `codes-${javascript ? 'js' : 'html'}@acme.test`;
      lifelineCli(['create-org', '--name', `Codes ${javascript ? 'JS' : 'HTML'}`, '--admin-email', email], password);
      await signInWithPassword(page, email, javascript);
      await expect(page).toHaveURL(/\/account$/);
      // No recovery modes before MFA is on.
      await expect(page.locator('#recovery')).toHaveCount(0);
      await turnOnMfa(page);
      await expect(page.locator('#recovery .codes-status')).toHaveText('You have no backup verification codes yet.');

      const codes = await generateFromAccount(page, email, javascript);
      // Shown once: the same page fetched again does not hold them.
      const again = await page.request.get('/account/backup-codes');
      expect(await again.text()).not.toContain(codes[0]);

      // Download: named for the product, the account and the day; exactly the codes shown.
      const file = await download(page);
      expect(file.name).toMatch(new RegExp(`^lifeline-backup-codes-${email.replace(/\./g, '\\.')}-\\d{4}-\\d{2}-\\d{2}\\.txt$`));
      expect(file.text).toContain(`Account: ${email}\n`);
      expect(file.text).toMatch(/\nGenerated: \d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} UTC\n/);
      expect(file.text).toContain('Each code works only once.');
      const inFile = [...file.text.matchAll(/^\s*(\d+)\. (\d{4} \d{4} \d{4})$/gm)];
      expect(inFile.map((m) => Number(m[1]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(inFile.map((m) => m[2])).toEqual(codes);

      if (javascript) {
        // Copy puts the same text on the clipboard.
        await allowClipboard(context, baseURL);
        await page.getByRole('button', { name: 'Copy' }).click();
        await expect(page.getByRole('status')).toHaveText('Copied.');
        expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(file.text);
        // Print opens the browser's print dialog (stood in for here).
        await page.evaluate(() => {
          (window as unknown as { printed: boolean }).printed = false;
          window.print = () => ((window as unknown as { printed: boolean }).printed = true);
        });
        await page.getByRole('button', { name: 'Print' }).click();
        expect(await page.evaluate(() => (window as unknown as { printed: boolean }).printed)).toBe(true);
      } else {
        await expect(page.getByRole('button', { name: 'Print' })).toHaveCount(0);
        await expect(page.getByText("To print, use your browser's Print command.")).toBeVisible();
      }

      // The print stylesheet prints the sheet alone.
      await page.emulateMedia({ media: 'print' });
      await expect(page.locator('.site-header')).toBeHidden();
      await expect(page.locator('.codes-sheet .actions')).toBeHidden();
      await expect(page.locator('.codes-sheet .codes')).toBeVisible();
      await page.emulateMedia({ media: 'screen' });

      // "Done" needs the confirmation first.
      await page.getByRole('button', { name: 'Done' }).click();
      await expect(page).toHaveURL(/\/account\/backup-codes$/);
      await confirmSaved(page);
      await expect(page.locator('#recovery .codes-status')).toHaveText('10 of 10 codes left.');
      await expect(page.locator('#recovery .codes-last-used')).toHaveText('Never');

      // Sign in with code #3, typed with dashes.
      await signOut(page);
      await signInWithBackupCode(page, email, codes[2].replace(/ /g, '-'), javascript, 9);
      await page.goto('/account');
      await expect(page.locator('#recovery .codes-status')).toHaveText('9 of 10 codes left.');
      await expect(page.locator('#recovery .codes-last-used')).toHaveText(/UTC$/);
      // The member's own history says when a code was used, and from where.
      await expect(page.locator('#recovery .own-history li').first()).toContainText('Signed in');
      await expect(page.locator('#recovery .own-history')).toContainText('Signed in with a backup code');
      await expect(page.locator('#recovery .own-history')).toContainText('from 127.0.0.1');

      // The same code again: refused, with the one answer for wrong and used codes.
      await signOut(page);
      await reachOwnBackupCodeStep(page, email, javascript);
      await enterBackupCode(page, '1234 5678 901a');
      await expect(page.locator('#code-error')).toHaveText('A backup verification code is 12 digits, like 4821 0937 5516.');
      await enterBackupCode(page, codes[2]);
      await expect(page.locator('#code-error')).toHaveText(
        'That backup verification code is not valid, or it has been used already.',
      );
      await expect(page).toHaveURL(/\/sign-in\/backup-code(\?.*)?$/);
      // A refused code is a secret: it comes back to no field and stays in no storage.
      await expect(page.getByLabel('Backup verification code')).toHaveValue('');
      if (javascript) {
        const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage }));
        expect(stored).not.toContain(codes[2]);
      }

      // Code #4 signs in; regenerate from the page that follows.
      await enterBackupCode(page, codes[3]);
      await expect(page).toHaveURL(/\/account\/recovered$/);
      await expect(page.locator('.codes-left')).toHaveText('You have 8 backup verification codes left.');
      await page.getByRole('button', { name: 'Generate New Codes' }).click();
      await expect(page).toHaveURL(/\/account\/backup-codes$/);
      const fresh = await codesOnSheet(page);
      expect(fresh.filter((code) => codes.includes(code))).toEqual([]);
      await confirmSaved(page);
      await expect(page.locator('#recovery .codes-status')).toHaveText('10 of 10 codes left.');

      // The old set is dead, every code of it; the new one works.
      await signOut(page);
      await reachOwnBackupCodeStep(page, email, javascript);
      await enterBackupCode(page, codes[4]);
      await expect(page.locator('#code-error')).toContainText('not valid, or it has been used already');
      await enterBackupCode(page, fresh[0]);
      await expect(page).toHaveURL(/\/account\/recovered$/);
      await expect(page.locator('.codes-left')).toHaveText('You have 9 backup verification codes left.');
    });

    // Issue 19, item 3: reloading the sheet resends its form; that must not replace the set
    // the member has just saved.
    test(`reloading the codes sheet says they were already shown and keeps them (${label})`, async ({ page }) => {
      const email = `resend-${javascript ? 'js' : 'html'}@acme.test`;
      lifelineCli(['create-org', '--name', `Resend ${javascript ? 'JS' : 'HTML'}`, '--admin-email', email], password);
      await signInWithPassword(page, email, javascript);
      await turnOnMfa(page);
      const saved = await generateFromAccount(page, email, javascript);

      // The browser posts the form again, as "reload" and "resend" do.
      const [resent] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/account/backup-codes') && r.request().method() === 'POST'),
        page.reload(),
      ]);
      expect(resent.request().postData() ?? '').toContain('replaces=');
      await expect(page.getByText('These codes were already shown')).toBeVisible();
      await expect(page.locator('.codes-sheet')).toHaveCount(0);

      // The set shown first is the one in force: its codes sign in.
      await signOut(page);
      await signInWithBackupCode(page, email, saved[0], javascript, 9);

      // A new set on purpose, from the form the page draws now.
      await page.goto('/account/backup-codes');
      await page.getByRole('button', { name: 'Generate New Codes' }).click();
      const fresh = await codesOnSheet(page);
      expect(fresh.filter((code) => saved.includes(code))).toEqual([]);
    });
  });
}
