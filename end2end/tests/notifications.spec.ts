// Security notices and "This wasn't me" (issue 14), as a member meets them: a member signs in
// with a backup code; the notice that arrives names no code and carries a "This wasn't me"
// link; opened from the mail client (another browser), the link secures the account at once:
// the signed-in session ends, the remaining backup codes stop, the administrators hear of it
// and the audit log records it; the authenticator still signs in; the link works once, and an
// altered one is refused. Once with JavaScript and once without.
//
// With no SMTP server the server writes each message as an `.eml` file under
// LIFELINE_E2E_MAIL_DIR (global-setup.ts); this file reads them as a mail client would.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
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

/** One message as a mail client shows it: headers decoded, parts decoded. */
type Mail = { file: string; to: string; subject: string; text: string; html: string; raw: string };

/** `Subject: =?utf-8?b?…?=` and `=?utf-8?q?…?=` as text. */
function decodeWords(value: string): string {
  return value.replace(/=\?[^?]+\?([bq])\?([^?]*)\?=\s*/gi, (_, kind: string, data: string) =>
    kind.toLowerCase() === 'b'
      ? Buffer.from(data, 'base64').toString('utf8')
      : quotedPrintable(data.replace(/_/g, ' ')),
  );
}

/** Quoted-printable as text: soft line breaks (`=` at a line's end) joined, `=XX` as bytes. */
function quotedPrintable(body: string): string {
  const joined = body.replace(/=\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const escape = joined.slice(i + 1, i + 3);
    if (joined[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(escape)) {
      bytes.push(parseInt(escape, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(joined[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** A header block (unfolded) as lower-cased names and values. */
function headersOf(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** The decoded text parts of an entity, by content type; multiparts are walked. */
function partsOf(entity: string): { type: string; body: string }[] {
  const split = entity.indexOf('\n\n');
  const headers = headersOf(split < 0 ? entity : entity.slice(0, split));
  const body = split < 0 ? '' : entity.slice(split + 2);
  const type = (headers['content-type'] ?? 'text/plain').split(';')[0].trim().toLowerCase();
  if (type.startsWith('multipart/')) {
    const boundary = headers['content-type'].match(/boundary="?([^";]+)"?/i)?.[1];
    if (!boundary) throw new Error(`a multipart with no boundary: ${headers['content-type']}`);
    return body
      .split(`--${boundary}`)
      .slice(1)
      .filter((part) => !part.startsWith('--'))
      .flatMap((part) => partsOf(part.replace(/^\n/, '')));
  }
  const encoding = (headers['content-transfer-encoding'] ?? '7bit').toLowerCase();
  const decoded =
    encoding === 'quoted-printable'
      ? quotedPrintable(body)
      : encoding === 'base64'
        ? Buffer.from(body, 'base64').toString('utf8')
        : body;
  return [{ type, body: decoded }];
}

function readMail(file: string): Mail {
  const raw = readFileSync(file, 'utf8').replace(/\r\n/g, '\n');
  const headers = headersOf(raw.slice(0, raw.indexOf('\n\n')));
  const parts = partsOf(raw);
  return {
    file,
    to: decodeWords(headers['to'] ?? ''),
    subject: decodeWords(headers['subject'] ?? ''),
    text: parts.find((p) => p.type === 'text/plain')?.body ?? '',
    html: parts.find((p) => p.type === 'text/html')?.body ?? '',
    raw,
  };
}

/** Every message the server has written so far. */
function mailbox(): Mail[] {
  const folder = process.env.LIFELINE_E2E_MAIL_DIR;
  if (!folder) throw new Error('LIFELINE_E2E_MAIL_DIR is not set: global-setup.ts did not run');
  // `.<key>.partial` files are messages still being written.
  return readdirSync(folder)
    .filter((name) => name.endsWith('.eml') && !name.startsWith('.'))
    .map((name) => readMail(path.join(folder, name)));
}

/** The one message to `to` whose subject matches, once the delivery worker has written it. */
async function mailTo(to: string, subject: RegExp): Promise<Mail> {
  const matching = () => mailbox().filter((mail) => mail.to.includes(to) && subject.test(mail.subject));
  await expect
    .poll(() => matching().length, { message: `a message to ${to} with subject ${subject}`, timeout: 20_000 })
    .toBeGreaterThan(0);
  const found = matching();
  expect(found, `one message to ${to} with subject ${subject}`).toHaveLength(1);
  return found[0];
}

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
