// The audit log as an auditor uses it: an owner filters the log down to one member's
// backup-code redemptions, sees the chain is intact, and downloads that view as CSV.
import { readFileSync } from 'node:fs';
import { test, expect, hydrated, lifelineCli, password, signInWithPassword, turnOnMfa } from './fixtures';

test('an owner filters the log to one member’s redemptions and downloads the CSV', async ({ page, browser, baseURL }) => {
  const owner = 'owner@audit.test';
  const member = 'member@audit.test';
  lifelineCli(['create-org', '--name', 'Audit Org', '--admin-email', owner], password);
  lifelineCli(['create-user', '--org', 'audit-org', '--email', member, '--role', 'member'], password);

  // The member sets up MFA, generates codes and signs in with one of them.
  const memberPage = await browser.newPage({ baseURL });
  await signInWithPassword(memberPage, member, true);
  await expect(memberPage).toHaveURL(/\/account$/);
  await turnOnMfa(memberPage);
  await memberPage.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }).click();
  const code = (await memberPage.locator('.codes-sheet .backup-code').first().innerText()).trim();
  await memberPage.getByLabel('I have saved these codes').check();
  await memberPage.getByRole('button', { name: 'Done' }).click();
  await memberPage.getByRole('button', { name: 'Sign out' }).click();
  await signInWithPassword(memberPage, member, true);
  await memberPage.getByRole('link', { name: 'Problem signing in?' }).click();
  await memberPage.getByRole('link', { name: 'Use Backup Verification code' }).click();
  await memberPage.getByLabel('Backup verification code').fill(code);
  await memberPage.getByRole('button', { name: 'VERIFY' }).click();
  await expect(memberPage).toHaveURL(/\/account\/recovered$/);
  await memberPage.close();

  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByRole('link', { name: 'Audit log' }).click();
  await expect(page).toHaveURL(/\/admin\/audit$/);
  await hydrated(page);
  await expect(page.locator('.chain-state')).toContainText('Intact');
  await page.getByLabel('Actor').fill(member);
  await page.getByLabel('Action').fill('backup_code.redeemed');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page).toHaveURL(/actor=member%40audit\.test/);
  await expect(page.locator('table.audit tbody tr')).toHaveCount(1);
  await expect(page.locator('.audit-action')).toHaveText('backup_code.redeemed');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'CSV' }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/^lifeline-audit-\d{4}-\d{2}-\d{2}\.csv$/);
  const lines = readFileSync(await download.path(), 'utf8').trim().split('\n');
  expect(lines[0]).toBe('seq,at,actor,action,target,outcome,source_ip,user_agent,details,prev_hash,hash');
  expect(lines).toHaveLength(2);
  expect(lines[1]).toContain(`,${member},backup_code.redeemed,${member},success,`);
  // The slot, never the code.
  expect(lines[1]).not.toContain(code.replace(/ /g, ''));
  expect(lines[1]).not.toContain(code);

  // The compliance report counts who stands where, links each number to the members page
  // filtered to them, downloads every member's standing, and charts the redemption.
  await page.goto('/admin/compliance');
  await expect(page.locator('.count-total')).toHaveText('2');
  await expect(page.locator('.count-with-mfa')).toHaveText('1');
  await expect(page.locator('.count-holding-codes')).toHaveText('1');
  await expect(page.getByRole('img', { name: 'Backup codes in the last 30 days: 1 used, 0 refused' })).toBeVisible();
  const [standings] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: "Download every member's standing as CSV" }).click(),
  ]);
  expect(standings.suggestedFilename()).toMatch(/^lifeline-compliance-\d{4}-\d{2}-\d{2}\.csv$/);
  const rows = readFileSync(await standings.path(), 'utf8').trim().split('\n');
  expect(rows[0]).toBe('email,role,mfa,codes_remaining,set_expired,compliant,exception,limited_from');
  expect(rows.slice(1).sort()).toEqual([
    `${member},member,true,9,false,true,,`,
    `${owner},owner,false,,false,true,,`,
  ]);
  await hydrated(page);
  await page.locator('.count-holding-codes').click();
  await expect(page).toHaveURL(/\/admin\/members\?standing=holding-codes$/);
  await expect(page.locator('.standing')).toHaveText('Holding backup codes');
  await expect(page.locator('table.members tbody tr')).toHaveCount(1);
  await expect(page.locator('table.members tbody')).toContainText(member);

  // The administration home: the same numbers, nothing waiting, the redemption among the
  // newest events, the chart.
  await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Overview' }).click();
  await expect(page).toHaveURL(/\/admin$/);
  await expect(page.locator('.count-holding-codes')).toHaveText('1');
  await expect(page.locator('.count-non-compliant')).toHaveText('0');
  await expect(page.locator('.nothing-waiting')).toBeVisible();
  await expect(page.locator('table.recent-events')).toContainText('backup_code.redeemed');
  await expect(page.getByRole('img', { name: 'Backup codes in the last 30 days: 1 used, 0 refused' })).toBeVisible();
  await page.locator('.count-with-mfa').click();
  await expect(page).toHaveURL(/\/admin\/members\?standing=with-mfa$/);
  await expect(page.locator('table.members tbody tr')).toHaveCount(1);

  // The chart's series link to the events behind them: the one redemption.
  await page.goto('/admin/compliance');
  await page.locator('.legend').getByRole('link', { name: 'used', exact: true }).click();
  await expect(page).toHaveURL(/\/admin\/audit\?from=\d{4}-\d{2}-\d{2}&to=\d{4}-\d{2}-\d{2}&action=backup_code\.redeemed$/);
  await expect(page.locator('table.audit tbody tr')).toHaveCount(1);
  await expect(page.locator('table.audit tbody')).toContainText('backup_code.redeemed');
});
