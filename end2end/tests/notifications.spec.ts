// Security notices and "This wasn't me" (issue 14), as a member meets them: a member signs in
// with a backup code; the notice that arrives names no code and carries a "This wasn't me"
// link; opened from the mail client (another browser), the link secures the account at once:
// the signed-in session ends, the remaining backup codes stop, the administrators hear of it
// and the audit log records it; the authenticator still signs in; the link works once, and an
// altered one is refused. Once with JavaScript and once without.
//
// With no SMTP server the server writes each message as an `.eml` file under
// LIFELINE_E2E_MAIL_DIR (global-setup.ts); this file reads them as a mail client would.
import type { Page } from '@playwright/test';
import { mailTo } from './mail';
import {
  test,
  expect,
  hydrated,
  lifelineCli,
  password,
  signInWithPassword,
  signInWithTotp,
  signOut,
  reachBackupCodeStep,
  enterBackupCode,
  turnOnMfa,
} from './fixtures';

/** The codes on the sheet just generated, slot 1 first. */
async function generateAndSaveCodes(page: Page): Promise<string[]> {
  await page.goto('/account');
  await page.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }).click();
  await expect(page).toHaveURL(/\/account\/backup-codes$/);
  const codes = (await page.locator('.codes-sheet .backup-code').allInnerTexts()).map((c) => c.trim());
  expect(codes).toHaveLength(10);
  await page.getByLabel('I have saved these codes').check();
  await page.getByRole('button', { name: 'Done' }).click();
  await expect(page).toHaveURL(/\/account\?saved=1$/);
  return codes;
}

/** A run of digits long enough to read as a code (a code is 12 digits). */
const codeLikeRun = /\d{12}/;

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript });

    test(`a backup-code sign-in notice's "This wasn't me" link ends the sessions and stops the codes, once (${label})`, async ({
      page,
      browser,
      baseURL,
    }) => {
      const tag = javascript ? 'js' : 'html';
      const org = `not-me-${tag}`;
      const owner = `owner-${tag}@not-me.test`;
      const member = `member-${tag}@not-me.test`;
      lifelineCli(['create-org', '--name', `Not Me ${tag.toUpperCase()}`, '--admin-email', owner], password);
      lifelineCli(['create-user', '--org', org, '--email', member, '--role', 'member'], password);

      // The member turns on MFA, saves a set of codes, and signs in with code #1.
      await signInWithPassword(page, member, javascript);
      await expect(page).toHaveURL(/\/account$/);
      const setupKey = await turnOnMfa(page);
      const codes = await generateAndSaveCodes(page);
      await signOut(page);
      await reachBackupCodeStep(page, member, javascript);
      await enterBackupCode(page, codes[0]);
      await expect(page).toHaveURL(/\/account\/recovered$/);
      await expect(page.locator('.codes-left')).toHaveText('You have 9 backup verification codes left.');

      // The notice: which code slot, what is left, and no code, nor anything that reads as one.
      const notice = await mailTo(member, /^A backup code was used to sign in/);
      expect(notice.text).toContain('Backup code number 1 of your set was used to sign in');
      expect(notice.text).toContain('You have 9 unused backup codes left.');
      for (const content of [notice.raw, notice.text, notice.html]) {
        expect(content).not.toMatch(codeLikeRun);
        for (const code of codes) {
          expect(content).not.toContain(code);
          expect(content).not.toContain(code.replace(/ /g, ''));
        }
      }

      // The link, in both parts alike, to this server's confirmation page.
      const link = notice.text.match(/^This wasn't me: (\S+)$/m)?.[1];
      expect(link, `a "This wasn't me" line in ${notice.file}`).toBeTruthy();
      expect(link!.startsWith(`${baseURL}/not-me?token=`)).toBe(true);
      expect(notice.html).toContain(`<a href="${link}">This wasn't me</a>`);

      // Opened from the mail client: another browser, signed in as nobody.
      const mailClient = await browser.newContext({ baseURL, javaScriptEnabled: javascript });
      const inbox = await mailClient.newPage();
      await inbox.goto(link!);
      if (javascript) await hydrated(inbox);
      await expect(inbox.getByRole('heading', { name: "This wasn't me" })).toBeVisible();
      await expect(inbox.locator('p.lead')).toContainText(`Secure the account ${member}`);
      await inbox.getByRole('button', { name: "This wasn't me: secure my account" }).click();
      await expect(inbox).toHaveURL(/\/not-me\/reported$/);
      await expect(inbox.getByRole('heading', { name: 'Your report was taken' })).toBeVisible();

      // The session the backup code opened is over.
      await page.reload();
      await expect(page).toHaveURL(/\/sign-in$/);

      // The member is told what was done (with no second link); the owner is alerted.
      const confirmation = await mailTo(member, /^You reported that something on your account wasn't you$/);
      expect(confirmation.text).not.toContain("This wasn't me:");
      expect(confirmation.html).not.toContain('/not-me?token=');
      const alert = await mailTo(owner, new RegExp(`^Alert: ${member.replace(/\./g, '\\.')} reported "This wasn't me"$`));
      expect(alert.text).not.toContain('/not-me?token=');

      // The audit log records the report, and its chain is intact.
      const log = lifelineCli(['audit', 'export', '--org', org, '--format', 'csv'], password);
      expect(log.split('\n').filter((line) => line.includes(',incident.reported,') && line.includes(member))).toHaveLength(1);
      lifelineCli(['audit', 'verify', '--org', org], password);

      // The authenticator still signs in; a saved code that was never used no longer does.
      await signInWithTotp(page, member, setupKey, javascript);
      await signOut(page);
      await reachBackupCodeStep(page, member, javascript);
      await enterBackupCode(page, codes[1]);
      await expect(page.locator('#code-error')).toContainText('not valid, or it has been used already');
      await expect(page).not.toHaveURL(/\/account\/recovered$/);

      // The link works once.
      await inbox.goto(link!);
      await expect(inbox.getByRole('alert')).toContainText('this link was already used');
      await expect(inbox.getByRole('button', { name: "This wasn't me: secure my account" })).toHaveCount(0);

      // An altered link (pointed at another member of the organization) is refused.
      const url = new URL(link!);
      const fields = url.searchParams.get('token')!.split('.');
      fields[1] = String(Number(fields[1]) - 1);
      url.searchParams.set('token', fields.join('.'));
      await inbox.goto(url.toString());
      await expect(inbox.getByRole('alert')).toContainText('this link is not one Lifeline sent');
      await expect(inbox.getByRole('button', { name: "This wasn't me: secure my account" })).toHaveCount(0);
      await expect(inbox.locator('p.lead')).toHaveCount(0);

      await mailClient.close();
    });
  });
}
