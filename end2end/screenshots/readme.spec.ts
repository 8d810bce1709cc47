// The README's two pictures, taken on a fresh database by `make screenshots`:
//   docs/images/members-console.png  the owner of "Acme" on /admin/members, with members in
//                                    different standings (codes used, codes unused, MFA
//                                    without codes under a "Required" policy, no MFA yet,
//                                    a locked password)
//   docs/images/codes-sheet.png      a member's freshly generated backup codes
// Not part of `make test` (screenshots.config.ts runs this folder, playwright.config.ts does not).
import path from 'node:path';
import type { Browser, Locator, Page } from '@playwright/test';
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
} from '../tests/fixtures';

const images = path.resolve(__dirname, '../../docs/images');
const viewport = { width: 1280, height: 800 };

const owner = 'margaret.hamilton@acme.test';
const org = 'acme';

test.use({ viewport, deviceScaleFactor: 1, colorScheme: 'light' });

/** Generates a set from the account page's "MFA Recovery Modes" and waits for the sheet. */
async function generateCodes(page: Page): Promise<string[]> {
  await page.goto('/account');
  await hydrated(page);
  await page.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }).click();
  await expect(page).toHaveURL(/\/account\/backup-codes$/);
  await hydrated(page);
  await expect(page.getByRole('heading', { name: 'Your backup verification codes' })).toBeVisible();
  const codes = page.locator('.codes-sheet .backup-code');
  await expect(codes).toHaveCount(10);
  return (await codes.allInnerTexts()).map((c) => c.trim());
}

/** The page from its top down to a little below `panel`, the full width of the viewport:
 * the whole of a table taller than the window, without the footer cut in half. */
async function screenshotDownTo(page: Page, panel: Locator, file: string) {
  await page.mouse.move(0, 0);
  const box = await panel.boundingBox();
  if (!box) throw new Error(`${file}: the panel is not on the page`);
  const height = Math.ceil(box.y + box.height + 24);
  await page.screenshot({
    path: path.join(images, file),
    fullPage: height > viewport.height,
    clip: { x: 0, y: 0, width: viewport.width, height },
  });
}

async function confirmSaved(page: Page) {
  await page.getByLabel('I have saved these codes').check();
  await page.getByRole('button', { name: 'Done' }).click();
  await expect(page).toHaveURL(/\/account\?saved=1$/);
}

/** A member signed in, in a browser of their own, on their account page. */
async function memberPage(browser: Browser, baseURL: string | undefined, email: string): Promise<Page> {
  const context = await browser.newContext({ baseURL, viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  await signInWithPassword(page, email, true);
  await expect(page).toHaveURL(/\/account$/);
  return page;
}

test('the members console and a fresh codes sheet', async ({ page, browser, baseURL }) => {
  test.setTimeout(180_000);
  lifelineCli(['create-org', '--name', 'Acme', '--admin-email', owner], password);
  const members: [string, string][] = [
    ['grace.hopper@acme.test', 'admin'],
    ['ada.lovelace@acme.test', 'member'],
    ['alan.turing@acme.test', 'member'],
    ['katherine.johnson@acme.test', 'member'],
    ['edsger.dijkstra@acme.test', 'member'],
    ['barbara.liskov@acme.test', 'member'],
  ];
  for (const [email, role] of members) {
    lifelineCli(['create-user', '--org', org, '--email', email, '--role', role], password);
  }

  // The owner: MFA on and a set of codes saved; stays signed in for the console.
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await turnOnMfa(page);
  await generateCodes(page);
  await confirmSaved(page);

  // Grace (admin) and Barbara: MFA on, a full set saved.
  for (const email of ['grace.hopper@acme.test', 'barbara.liskov@acme.test']) {
    const member = await memberPage(browser, baseURL, email);
    await turnOnMfa(member);
    await generateCodes(member);
    await confirmSaved(member);
    await member.context().close();
  }

  // Ada: MFA on, a set saved, and one code spent signing in after losing her phone.
  {
    const ada = 'ada.lovelace@acme.test';
    const member = await memberPage(browser, baseURL, ada);
    await turnOnMfa(member);
    const codes = await generateCodes(member);
    await confirmSaved(member);
    await signOut(member);
    await reachBackupCodeStep(member, ada, true);
    await enterBackupCode(member, codes[2]);
    await expect(member).toHaveURL(/\/account\/recovered$/);
    await member.context().close();
  }

  // Alan: MFA on, no codes yet. Katherine: has not set MFA up.
  {
    const member = await memberPage(browser, baseURL, 'alan.turing@acme.test');
    await turnOnMfa(member);
    await member.context().close();
  }

  // Edsger: five wrong passwords lock his sign-in.
  {
    const context = await browser.newContext({ baseURL, viewport });
    const member = await context.newPage();
    await member.goto('/sign-in');
    await hydrated(member);
    await member.getByLabel('Email address').fill('edsger.dijkstra@acme.test');
    await member.getByRole('button', { name: 'NEXT' }).click();
    await expect(member).toHaveURL(/\/sign-in\/password$/);
    for (let attempt = 1; attempt <= 5; attempt++) {
      await member.getByLabel('Password').fill(`wrong guess ${attempt}`);
      await member.getByRole('button', { name: 'SIGN IN' }).click();
      await expect(member.getByRole('alert')).toHaveText('Incorrect email address or password.');
    }
    await context.close();
  }

  // The owner makes codes required of every member with MFA: Alan, without a set, falls short.
  await page.goto('/admin/policy');
  await hydrated(page);
  await page.getByLabel('Required: every member with MFA must hold a valid set', { exact: true }).check();
  await page.getByRole('button', { name: 'Preview changes' }).click();
  await expect(page).toHaveURL(/\/admin\/policy\?preview=1/);
  await page.getByRole('button', { name: 'Save policy' }).click();
  await expect(page.getByRole('status').filter({ hasText: /^Saved as version \d+\.$/ })).toBeVisible();

  // The members console, as the owner sees it.
  await page.goto('/admin/members');
  await hydrated(page);
  await expect(page.locator('table.members tbody tr')).toHaveCount(members.length + 1);
  await expect(page.locator('tr', { hasText: 'ada.lovelace@acme.test' }).locator('.codes-left')).toHaveText('9');
  await expect(page.locator('tr', { hasText: 'alan.turing@acme.test' }).locator('td.warn')).toHaveText('Non-compliant');
  await expect(async () => {
    await page.reload();
    await hydrated(page);
    await expect(page.locator('tr', { hasText: 'edsger.dijkstra@acme.test' }).locator('.sign-in-state')).toContainText(
      'Locked',
      { timeout: 1000 },
    );
  }).toPass({ timeout: 10_000 });
  // Every row: the table is taller than the window, the page below it (adding a member) is not shown.
  await screenshotDownTo(page, page.locator('section.panel.wide'), 'members-console.png');

  // Katherine turns on MFA and generates her first set: the sheet, codes shown this once.
  const katherine = await memberPage(browser, baseURL, 'katherine.johnson@acme.test');
  await turnOnMfa(katherine);
  await generateCodes(katherine);
  await screenshotDownTo(katherine, katherine.locator('.codes-sheet'), 'codes-sheet.png');
  await katherine.context().close();
});
