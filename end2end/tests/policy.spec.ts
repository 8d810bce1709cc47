// The organization's backup-code policy, as an owner and a member meet it: the owner
// previews and saves "Not allowed"; the member's codes stop working at sign-in and their
// account page says why; a direct call is refused too; the owner allows codes again and
// the member signs in with one. Running low means replacing: under the policy switch, a
// backup-code sign-in that leaves the owner low opens nothing but a new set. A grace period
// for "Required": before its date a countdown on every page, from it only the MFA settings
// until a set is generated.
import type { Page } from '@playwright/test';
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
  totpCode,
  turnOnMfa,
} from './fixtures';

const notAvailable = "Backup verification codes are not available for your account, per your organization's policy.";

/** As the owner: preview `mode` on the policy page, check the preview, save it. */
async function setCodes(page: Page, label: string, expectedEffect: RegExp) {
  await page.goto('/admin/policy');
  await hydrated(page);
  await page.getByLabel(label, { exact: true }).check();
  await page.getByRole('button', { name: 'Preview changes' }).click();
  await expect(page).toHaveURL(/\/admin\/policy\?preview=1/);
  await expect(page.locator('#preview .effects')).toContainText(expectedEffect);
  await page.getByRole('button', { name: 'Save policy' }).click();
  await expect(page.getByRole('status').filter({ hasText: /^Saved as version \d+\.$/ })).toBeVisible();
}

/**
 * On a page with the "Generate New Codes" form: a new set, saved, lifts the session's limit
 * (`limited`, its words): the banner goes and the members console opens.
 */
async function newSetLifts(page: Page, limited: string) {
  await page.getByRole('button', { name: 'Generate New Codes' }).click();
  await expect(page).toHaveURL(/\/account\/backup-codes$/);
  const fresh = (await page.locator('.codes-sheet .backup-code').allInnerTexts()).map((c) => c.trim());
  expect(fresh).toHaveLength(10);
  await page.getByLabel('I have saved these codes').check();
  await page.getByRole('button', { name: 'Done' }).click();
  await expect(page.getByRole('alert').filter({ hasText: limited })).toHaveCount(0);
  const open = await page.goto('/admin/members');
  expect(open?.status()).toBe(200);
}

test('an owner disallows backup codes, the member is refused, then allowed again', async ({ page }) => {
  const owner = 'owner@policy.test';
  const member = 'member@policy.test';
  lifelineCli(['create-org', '--name', 'Policy Org', '--admin-email', owner], password);
  lifelineCli(['create-user', '--org', 'policy-org', '--email', member, '--role', 'member'], password);

  // The member turns on MFA and generates codes.
  await signInWithPassword(page, member, true);
  await expect(page).toHaveURL(/\/account$/);
  const setupKey = await turnOnMfa(page);
  await page.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }).click();
  const codes = (await page.locator('.codes-sheet .backup-code').allInnerTexts()).map((c) => c.trim());
  expect(codes).toHaveLength(10);
  await page.getByLabel('I have saved these codes').check();
  await page.getByRole('button', { name: 'Done' }).click();
  await signOut(page);

  // The owner previews "Not allowed": it names the member and the codes that stop working.
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByRole('link', { name: 'Backup-code policy' }).click();
  await expect(page).toHaveURL(/\/admin\/policy$/);
  await expect(page.getByText('the defaults: nobody has saved a policy yet')).toBeVisible();
  await setCodes(page, 'Not allowed', /1 member holds 10 unused codes that will stop working\./);
  await expect(page.locator('.policy-in-force')).toContainText('Not allowed');
  await expect(page.locator('#history')).toContainText('Backup verification codes: Allowed → Not allowed');

  // Why is the member refused? The rule that decides, from Casbin.
  await page.getByLabel("Member's email address").last().fill(member);
  await page.getByLabel('Action').selectOption('redeem');
  await page.getByRole('button', { name: 'Explain' }).click();
  await expect(page.locator('.explanation')).toContainText(`Denied: ${member} may not sign in with a backup code.`);
  await expect(page.locator('.explanation .rules')).toContainText(/p, member, org:\d+, backup_codes, redeem, deny/);
  await signOut(page);

  // The member: no backup-code option at sign-in, and a direct call is refused as well.
  await signInWithPassword(page, member, true);
  await expect(page).toHaveURL(/\/sign-in\/verify$/);
  await page.getByRole('link', { name: 'Problem signing in?' }).click();
  await expect(page.getByText(notAvailable)).toBeVisible();
  await expect(page.getByRole('link', { name: 'Use Backup Verification code' })).toHaveCount(0);
  await expect(page.getByRole('link', { name: owner })).toBeVisible();
  await page.goto('/sign-in/backup-code');
  await expect(page.getByText(notAvailable)).toBeVisible();
  await expect(page.getByLabel('Backup verification code')).toHaveCount(0);
  const direct = await page.request.post('/api/sign_in/backup_code', {
    form: { code: codes[0] },
    headers: { Accept: 'application/json' },
  });
  expect(direct.status()).toBe(403);
  expect(await direct.text()).toContain('not available for your account');

  // Signed in with the authenticator, the account page says the same and offers nothing.
  await page.goto('/sign-in/verify');
  await page.getByLabel('Verification code').fill(totpCode(setupKey, Date.now() / 1000 + 30));
  await page.getByRole('button', { name: 'VERIFY' }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.locator('#recovery')).toContainText(notAvailable);
  await expect(page.locator('#recovery').getByRole('button', { name: 'Generate New Codes' })).toHaveCount(0);
  // Posting the generate form anyway is refused by the server.
  const forced = await page.request.post('/account/backup-codes', { form: { password: '' } });
  expect(await forced.text()).not.toContain('class="backup-code"');
  await signOut(page);

  // The owner allows codes again; the member signs in with one.
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  // The preview names the withheld codes that will work again.
  await setCodes(page, 'Allowed', /\d+ members? holds? \d+ unused codes? that will work again\./);
  await signOut(page);
  await signInWithPassword(page, member, true);
  await page.getByRole('link', { name: 'Problem signing in?' }).click();
  await page.getByRole('link', { name: 'Use Backup Verification code' }).click();
  await page.getByLabel('Backup verification code').fill(codes[0]);
  await page.getByRole('button', { name: 'VERIFY' }).click();
  await expect(page).toHaveURL(/\/account\/recovered$/);
  await expect(page.locator('.codes-left')).toHaveText('You have 9 backup verification codes left.');
});

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript });

    test(`an owner issues a recovery code and the member signs in with it once (${label})`, async ({ page }) => {
      const tag = javascript ? 'js' : 'html';
      const owner = `owner-${tag}@recovery.test`;
      const member = `member-${tag}@recovery.test`;
      lifelineCli(['create-org', '--name', `Recovery ${tag}`, '--admin-email', owner], password);
      lifelineCli(['create-user', '--org', `recovery-${tag}`, '--email', member, '--role', 'member'], password);

      // The member turns on MFA, then loses the phone, with no backup codes saved.
      await signInWithPassword(page, member, javascript);
      await expect(page).toHaveURL(/\/account$/);
      await turnOnMfa(page);
      await signOut(page);

      await signInWithPassword(page, owner, javascript);
      await expect(page).toHaveURL(/\/account$/);
      await page.getByRole('link', { name: 'Recovery codes' }).click();
      await expect(page).toHaveURL(/\/admin\/recovery$/);
      await page.getByLabel("Member's email address").fill(member);
      await page.getByRole('button', { name: 'Request recovery code' }).click();
      const row = page.locator('#requests tr', { hasText: member });
      await expect(row.locator('.request-state')).toContainText('Ready to reveal');
      const [answer] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/admin/recovery') && r.request().method() === 'POST'),
        row.getByRole('button', { name: 'Reveal' }).click(),
      ]);
      expect(answer.headers()['cache-control']).toBe('no-store');
      await expect(page.getByRole('heading', { name: 'Recovery code' })).toBeVisible();
      const code = (await page.locator('.recovery-code .backup-code').innerText()).trim();
      expect(code).toMatch(/^\d{4} \d{4} \d{4}$/);
      await expect(page.locator('.code-terms')).toContainText('It works once, until');
      await page.getByRole('link', { name: 'Done' }).click();
      await expect(page.locator('#requests .request-state')).toContainText('Active: it works once, until');
      await expect(page.locator('body')).not.toContainText(code);
      await signOut(page);

      // The member signs in with it through "Use Backup Verification code".
      await signInWithPassword(page, member, javascript);
      await page.getByRole('link', { name: 'Problem signing in?' }).click();
      await page.getByRole('link', { name: 'Use Backup Verification code' }).click();
      await page.getByLabel('Backup verification code').fill(code.replace(/ /g, '-'));
      await page.getByRole('button', { name: 'VERIFY' }).click();
      await expect(page).toHaveURL(/\/account\/recovered$/);
      await expect(page.locator('.codes-left')).toHaveText('You have no backup verification codes left.');
      await expect(page.getByRole('button', { name: 'Generate New Codes' })).toBeVisible();
      await signOut(page);

      // Once.
      await signInWithPassword(page, member, javascript);
      await expect(page).toHaveURL(/\/sign-in\/verify$/);
      await page.goto('/sign-in/backup-code');
      await page.getByLabel('Backup verification code').fill(code);
      await page.getByRole('button', { name: 'VERIFY' }).click();
      await expect(page.locator('#code-error')).toContainText('not valid, or it has been used already');
    });
  });
}

test('running low means replacing: a backup-code sign-in that leaves few codes asks for a new set first', async ({ page }) => {
  const owner = 'owner@low.test';
  lifelineCli(['create-org', '--name', 'Low Org', '--admin-email', owner], password);
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await turnOnMfa(page);
  await page.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }).click();
  const codes = (await page.locator('.codes-sheet .backup-code').allInnerTexts()).map((c) => c.trim());
  expect(codes).toHaveLength(10);
  await page.getByLabel('I have saved these codes').check();
  await page.getByRole('button', { name: 'Done' }).click();

  // Nine codes left is low, and low asks for a new set.
  await page.goto('/admin/policy');
  await hydrated(page);
  await page.getByLabel('Warn members at this many codes left').fill('9');
  await page.getByLabel(/require a new set before anything else/).check();
  await page.getByRole('button', { name: 'Preview changes' }).click();
  await expect(page.locator('#preview .changes')).toContainText('New set required when codes run low: Off → On');
  await page.getByRole('button', { name: 'Save policy' }).click();
  await expect(page.getByRole('status').filter({ hasText: /^Saved as version \d+\.$/ })).toBeVisible();
  await signOut(page);

  await reachBackupCodeStep(page, owner, true);
  await enterBackupCode(page, codes[0]);
  await expect(page).toHaveURL(/\/account\/recovered$/);
  const limited = 'You signed in with a backup code and your codes are running low.';
  await expect(page.getByRole('alert').filter({ hasText: limited })).toBeVisible();
  await expect(page.locator('.codes-left')).toHaveText('You have 9 backup verification codes left.');

  // Anything beyond the MFA settings is refused, with the reason.
  const members = await page.goto('/admin/members');
  expect(members?.status()).toBe(403);
  await expect(page.getByRole('alert')).toContainText(limited);

  // A new set, after the password typed again (a backup code is not it), lifts the limit.
  await page.goto('/account/recovered');
  await hydrated(page);
  await page.getByLabel('Password').fill(password);
  await newSetLifts(page, limited);
  await expect(page.getByRole('heading', { name: 'Members' })).toBeVisible();
});

/** The UTC day `days` from today, as a date field takes it (`2026-12-05`). */
function utcDay(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

test('a grace period for Required: a countdown before the date, only MFA settings from it until codes', async ({ page }) => {
  const owner = 'owner@grace.test';
  lifelineCli(['create-org', '--name', 'Grace Org', '--admin-email', owner], password);
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await turnOnMfa(page);

  // "Required" from five days ahead: the preview names the owner (MFA on, no codes).
  await page.goto('/admin/policy');
  await hydrated(page);
  await page.getByLabel(/^Required/).check();
  await page.getByLabel(/limit members without codes from/).fill(utcDay(5));
  await page.getByRole('button', { name: 'Preview changes' }).click();
  const onTheDate = page.locator('#preview .effects li').filter({ hasText: 'will be able to use only their MFA settings' });
  await expect(onTheDate).toContainText('1 member holds no working backup code');
  await expect(onTheDate).toContainText(owner);
  await page.getByRole('button', { name: 'Save policy' }).click();
  await expect(page.getByRole('status').filter({ hasText: /^Saved as version \d+\.$/ })).toBeVisible();

  // Every page counts down, and the members console says "in grace".
  const countdown = page.locator('.codes-due');
  await page.goto('/admin/members');
  await expect(countdown).toContainText('Your organization requires backup codes');
  await expect(countdown).toContainText('(5 days left)');
  await expect(page.locator('table.members tbody')).toContainText('Non-compliant, in grace, 5 days left');
  await page.goto('/account');
  await expect(countdown).toBeVisible();

  // The date moved to today, which has begun: limited from the moment of saving.
  await page.goto('/admin/policy');
  await hydrated(page);
  await page.getByLabel(/limit members without codes from/).fill(utcDay(0));
  await page.getByRole('button', { name: 'Preview changes' }).click();
  const atOnce = page.locator('#preview .effects li').filter({ hasText: 'from the moment you save' });
  await expect(atOnce).toContainText(owner);
  await page.getByRole('button', { name: 'Save policy' }).click();

  // The owner, named in the preview, is limited at once: the policy page itself says so.
  const limited = 'Your organization requires backup codes, and the date to generate them has passed.';
  await expect(page.getByText(limited)).toBeVisible();
  const members = await page.goto('/admin/members');
  expect(members?.status()).toBe(403);
  await expect(page.getByRole('alert')).toContainText(limited);
  await expect(countdown).toHaveCount(0);

  // A set lifts it at once: nothing else to do.
  await page.goto('/account');
  await hydrated(page);
  await expect(page.locator('#recovery').getByRole('alert').filter({ hasText: limited })).toBeVisible();
  await newSetLifts(page, limited);
  await expect(page.locator('table.members tbody')).toContainText('Compliant');
});

test("the organization's rules for recovery codes: a lifetime, a later start, uses, and codes off", async ({ page }) => {
  const owner = 'owner@code-rules.test';
  const member = 'member@code-rules.test';
  lifelineCli(['create-org', '--name', 'Code Rules', '--admin-email', owner], password);
  lifelineCli(['create-user', '--org', 'code-rules', '--email', member, '--role', 'member'], password);
  await signInWithPassword(page, member, true);
  await expect(page).toHaveURL(/\/account$/);
  await turnOnMfa(page);
  await signOut(page);

  // The owner lets codes live up to a week and allow two sign-ins.
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.goto('/admin/policy');
  await hydrated(page);
  await page.getByLabel('Longest lifetime').fill('7d');
  await page.getByLabel(/^Uses per code, at most/).fill('2');
  await page.getByRole('button', { name: 'Preview changes' }).click();
  await expect(page.locator('#preview .changes')).toContainText('Longest recovery code lifetime: 1 day → 7 days');
  await expect(page.locator('#preview .changes')).toContainText('Uses per recovery code: One-time → Up to 2');
  await page.getByRole('button', { name: 'Save policy' }).click();
  await expect(page.getByRole('status').filter({ hasText: /^Saved as version \d+\.$/ })).toBeVisible();

  // A code that starts in two days: not valid yet.
  const request = async (lifetime: string, startsAt: string, uses: string) => {
    await page.goto('/admin/recovery');
    await hydrated(page);
    await page.getByLabel("Member's email address").fill(member);
    await page.getByLabel('Lifetime', { exact: true }).fill(lifetime);
    await page.getByLabel('Starts (UTC)').fill(startsAt);
    await page.getByLabel('Uses').fill(uses);
    await page.getByRole('button', { name: 'Request recovery code' }).click();
    const row = page.locator('#requests tbody tr').first();
    await expect(row.locator('.request-state')).toContainText('Ready to reveal');
    await row.getByRole('button', { name: 'Reveal' }).click();
    const code = (await page.locator('.recovery-code .backup-code').innerText()).trim();
    const terms = await page.locator('.code-terms').innerText();
    await page.getByRole('link', { name: 'Done' }).click();
    return { code, terms };
  };
  // Too long for the rules: refused next to the field, and nothing is issued.
  await page.goto('/admin/recovery');
  await hydrated(page);
  await page.getByLabel("Member's email address").fill(member);
  await page.getByLabel('Lifetime', { exact: true }).fill('8d');
  await page.getByRole('button', { name: 'Request recovery code' }).click();
  await expect(page.locator('#lifetime-error')).toContainText('from 1 hour to 7 days');
  await expect(page.locator('#requests tbody tr')).toHaveCount(0);

  const inTwoDays = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 16);
  const later = await request('2d', inTwoDays, '2');
  expect(later.terms).toContain('It works 2 times, from');
  await expect(page.locator('#requests tbody tr').first().locator('.request-state')).toContainText(
    'Not valid yet: it works from',
  );
  await signOut(page);
  await reachBackupCodeStep(page, member, true);
  await enterBackupCode(page, later.code);
  await expect(page.locator('#code-error')).toContainText('not valid, or it has been used already');

  // A new code, working now, replaces it; it signs in twice, then no more.
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  const now = await request('1d', '', '2');
  expect(now.terms).toContain('It works 2 times, until');
  const rows = page.locator('#requests tbody tr');
  await expect(rows.nth(0).locator('.request-state')).toContainText('Active: 2 of 2 uses left');
  await expect(rows.nth(1).locator('.request-state')).toContainText('Replaced by a newer code for this member.');
  await signOut(page);
  for (let use = 0; use < 2; use++) {
    await reachBackupCodeStep(page, member, true);
    await enterBackupCode(page, now.code);
    await expect(page).toHaveURL(/\/account\/recovered$/);
    await signOut(page);
  }
  await reachBackupCodeStep(page, member, true);
  await enterBackupCode(page, now.code);
  await expect(page.locator('#code-error')).toContainText('not valid, or it has been used already');

  // Used up, on the list; then codes off: nobody may issue, and the page says so.
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.goto('/admin/recovery');
  await expect(rows.nth(0).locator('.request-state')).toContainText('Used up: all 2 uses spent.');
  await page.goto('/admin/policy');
  await hydrated(page);
  await page.getByLabel(/^Nobody: recovery codes off/).check();
  await page.getByRole('button', { name: 'Preview changes' }).click();
  await expect(page.locator('#preview .effects')).toContainText('Recovery codes turn off');
  await page.getByRole('button', { name: 'Save policy' }).click();
  await expect(page.getByRole('status').filter({ hasText: /^Saved as version \d+\.$/ })).toBeVisible();
  await page.goto('/admin/recovery');
  await expect(page.locator('#codes-off')).toContainText('recovery codes turned off');
  await expect(page.getByRole('button', { name: 'Request recovery code' })).toHaveCount(0);
});
