// The help desk and auditors (README, "Roles"): a help-desk member issues a sign-in code
// for a member, who signs in with it, and is refused one for an admin; an auditor reads the
// event in the audit log, and cannot add members or save the policy.
import {
  test,
  expect,
  hydrated,
  lifelineCli,
  password,
  signInWithPassword,
  signOut,
  turnOnMfa,
} from './fixtures';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Minutes since the epoch of a time as the pages write it: `28 Nov 2026, 09:15 UTC`. */
function utcMinutes(written: string): number {
  const match = written.trim().match(/^(\d{1,2}) (\w{3}) (\d{4}), (\d{2}):(\d{2}) UTC$/);
  expect(match, written).not.toBeNull();
  const [, day, month, year, hour, minute] = match!;
  return Date.UTC(Number(year), MONTHS.indexOf(month), Number(day), Number(hour), Number(minute)) / 60000;
}

test('the help desk issues a sign-in code for a member only, and an auditor reads it but changes nothing', async ({ page }) => {
  const org = 'roles-org';
  const [owner, helpdesk, auditor, admin, member] = ['owner', 'helpdesk', 'auditor', 'admin', 'member'].map(
    (name) => `${name}@${org}.test`,
  );
  lifelineCli(['create-org', '--name', org, '--admin-email', owner], password);
  for (const [email, role] of [
    [helpdesk, 'helpdesk'],
    [auditor, 'auditor'],
    [admin, 'admin'],
    [member, 'member'],
  ]) {
    lifelineCli(['create-user', '--org', org, '--email', email, '--role', role], password);
  }

  // The member turns on MFA, then loses the phone.
  await signInWithPassword(page, member, true);
  await expect(page).toHaveURL(/\/account$/);
  await turnOnMfa(page);
  await signOut(page);

  // The help desk: a code for the member, none for an admin.
  await signInWithPassword(page, helpdesk, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Recovery codes' }).click();
  await expect(page).toHaveURL(/\/admin\/recovery$/);
  await hydrated(page);
  await page.getByLabel("Member's email address").fill(admin);
  await page.getByRole('button', { name: 'Request recovery code' }).click();
  await expect(page.getByText('You are not allowed to do that.')).toBeVisible();
  await expect(page.locator('#requests tr', { hasText: admin })).toHaveCount(0);
  // A code for an hour (the policy allows 1 hour to 1 day by default).
  await page.getByLabel("Member's email address").fill(member);
  await page.getByLabel('Lifetime').fill('1h');
  await page.getByRole('button', { name: 'Request recovery code' }).click();
  const row = page.locator('#requests tr', { hasText: member });
  await expect(row.locator('.request-state')).toContainText('Ready to reveal');
  await row.getByRole('button', { name: 'Reveal' }).click();
  const code = (await page.locator('.recovery-code .backup-code').innerText()).trim();
  expect(code).toMatch(/^\d{4} \d{4} \d{4}$/);
  await page.getByRole('link', { name: 'Done' }).click();
  // It works for an hour from now: the row gives both ends, an hour apart.
  const works = await row.locator('td').nth(3).innerText();
  const [from, until] = works.split(' \u2013 ').map(utcMinutes);
  expect(until - from).toBe(60);
  await signOut(page);

  // The member signs in with it.
  await signInWithPassword(page, member, true);
  await page.getByRole('link', { name: 'Problem signing in?' }).click();
  await page.getByRole('link', { name: 'Use Backup Verification code' }).click();
  await page.getByLabel('Backup verification code').fill(code);
  await page.getByRole('button', { name: 'VERIFY' }).click();
  await expect(page).toHaveURL(/\/account\/recovered$/);
  await signOut(page);

  // The help desk sees it used.
  await signInWithPassword(page, helpdesk, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.goto('/admin/recovery');
  await expect(row.locator('.request-state')).toContainText('Used: the member signed in with it.');
  await signOut(page);

  // The auditor reads the record, and changes nothing.
  await signInWithPassword(page, auditor, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.goto('/admin/audit');
  await expect(page.locator('.audit-action', { hasText: 'recovery_code.revealed' }).first()).toBeVisible();
  await expect(page.locator('.audit-action', { hasText: 'recovery_code.used' }).first()).toBeVisible();
  await page.goto('/admin/members');
  await expect(page.locator('table.members tbody tr', { hasText: member })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Add a member' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: `Revoke codes of ${member}` })).toHaveCount(0);
  await page.goto('/admin/policy');
  await hydrated(page);
  await page.getByLabel('Not allowed', { exact: true }).check();
  await page.getByRole('button', { name: 'Preview changes' }).click();
  await page.getByRole('button', { name: 'Save policy' }).click();
  await expect(page.getByText('You are not allowed to do that.')).toBeVisible();
  await page.goto('/admin/policy');
  await expect(page.getByText('the defaults: nobody has saved a policy yet')).toBeVisible();
});
