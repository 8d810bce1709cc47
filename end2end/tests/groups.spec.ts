// Groups (README, "Groups"): an owner creates a group, fills it from a CSV (a wrong line
// stops the whole file until it is fixed), scopes a help-desk member to it and lists its
// members; the help desk issues a 1-hour code for the group's member and is refused one for
// a member outside it; the member signs in with it; an auditor reads the record and changes
// nothing.
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

test('an owner groups members and scopes the help desk, who issues a code for the group alone', async ({ page }) => {
  const org = 'groups-org';
  const [owner, helpdesk, auditor, engineer, contractor] = [
    'owner',
    'helpdesk',
    'auditor',
    'engineer',
    'contractor',
  ].map((name) => `${name}@${org}.test`);
  lifelineCli(['create-org', '--name', org, '--admin-email', owner], password);
  for (const [email, role] of [
    [helpdesk, 'helpdesk'],
    [auditor, 'auditor'],
    [engineer, 'member'],
    [contractor, 'member'],
  ]) {
    lifelineCli(['create-user', '--org', org, '--email', email, '--role', role], password);
  }

  // The engineer turns on MFA, then loses the phone.
  await signInWithPassword(page, engineer, true);
  await expect(page).toHaveURL(/\/account$/);
  await turnOnMfa(page);
  await signOut(page);

  // The owner creates "Engineering" and fills it from a CSV.
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Groups' }).click();
  await expect(page).toHaveURL(/\/admin\/groups$/);
  await hydrated(page);
  await expect(page.getByText('No groups yet.')).toBeVisible();
  await page.getByLabel('Name', { exact: true }).fill('Engineering');
  await page.getByRole('button', { name: 'Create group' }).click();
  const group = page.locator('table.groups tbody tr', { hasText: 'Engineering' });
  await expect(group).toBeVisible();
  // A second group of the same name (any case) is refused next to the field.
  await page.getByLabel('Name', { exact: true }).fill('ENGINEERING');
  await page.getByRole('button', { name: 'Create group' }).click();
  await expect(page.locator('#name-error')).toHaveText('Your organization has a group with this name already.');

  // A file with an address of nobody here: previewed line by line, nothing to add.
  const csv = page.getByLabel('CSV of email addresses');
  await csv.fill(`email\n${engineer}\nnobody@${org}.test\n`);
  await page.getByRole('button', { name: 'Preview' }).click();
  const preview = page.locator('table.csv-preview');
  await expect(preview.locator('tr', { hasText: engineer })).toContainText('Will be added.');
  await expect(preview.locator('tr', { hasText: `nobody@${org}.test` })).toContainText(
    'No member of your organization has this address.',
  );
  await expect(page.locator('.preview-summary')).toContainText('1 line needs fixing');
  await expect(page.getByRole('button', { name: /^Add \d+ members? to/ })).toHaveCount(0);
  // Fixed, it adds its one member, and the group counts them.
  await csv.fill(`email\n${engineer}\n`);
  await page.getByRole('button', { name: 'Preview' }).click();
  await expect(page.locator('.preview-summary')).toHaveText('1 member will be added to Engineering.');
  await page.getByRole('button', { name: 'Add 1 member to Engineering' }).click();
  await expect(page.getByText('Added to Engineering, which now has 1 member.')).toBeVisible();
  await expect(group.locator('td').first()).toHaveText('1');

  // The help desk is scoped to the group.
  await page
    .getByRole('group', { name: `Groups ${helpdesk} assists` })
    .getByLabel('Engineering')
    .check();
  await page.getByRole('button', { name: `Save groups for ${helpdesk}` }).click();
  await expect(group).toContainText(helpdesk);

  // A group's exception: saved, then the form opens on each group's own choice and reason
  // (from its row's link, or picked in the form), so that a save changes only what changed.
  const exception = page.locator('#group-exception');
  await exception.getByLabel('Allowed, whatever the setting', { exact: true }).check();
  await exception.getByLabel('Reason', { exact: true }).fill('pilot of backup codes');
  await page.getByRole('button', { name: "Save the group's exception" }).click();
  await expect(group).toContainText('Backup codes allowed (pilot of backup codes)');
  await page.getByLabel('Name', { exact: true }).fill('Contractors');
  await page.getByRole('button', { name: 'Create group' }).click();
  const contractors = page.locator('table.groups tbody tr', { hasText: 'Contractors' });
  await expect(contractors).toContainText("Follows the organization's setting");
  await group.getByRole('link', { name: 'Change exception of Engineering' }).click();
  await expect(exception.getByLabel('Group', { exact: true })).toHaveValue(/^\d+$/);
  await expect(exception.locator('select option:checked')).toHaveText('Engineering');
  await expect(exception.getByLabel('Allowed, whatever the setting', { exact: true })).toBeChecked();
  await expect(exception.getByLabel('Reason', { exact: true })).toHaveValue('pilot of backup codes');
  await exception.getByLabel('Group', { exact: true }).selectOption({ label: 'Contractors' });
  await expect(exception.getByLabel("Follow the organization's setting", { exact: true })).toBeChecked();
  await expect(exception.getByLabel('Reason', { exact: true })).toHaveValue('');
  // The link works without JavaScript too: the page as the server renders it.
  const href = await group.getByRole('link', { name: 'Change exception of Engineering' }).getAttribute('href');
  const served = await (await page.request.get(href!)).text();
  expect(served).toMatch(/<input[^>]*value="allow"[^>]*checked|<input[^>]*checked[^>]*value="allow"/);
  expect(served).toContain('value="pilot of backup codes"');

  // The members console lists the group's members alone.
  await group.getByRole('link', { name: 'Engineering', exact: true }).click();
  await expect(page).toHaveURL(/\/admin\/members\?group=\d+$/);
  await expect(page.locator('.filtered .group')).toHaveText('Engineering');
  await expect(page.locator('table.members tbody tr')).toHaveCount(1);
  await expect(page.locator('table.members tbody tr', { hasText: engineer })).toBeVisible();
  await signOut(page);

  // The help desk: no code for the contractor, a 1-hour code for the engineer.
  await signInWithPassword(page, helpdesk, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.goto('/admin/recovery');
  await hydrated(page);
  await page.getByLabel("Member's email address").fill(contractor);
  await page.getByRole('button', { name: 'Request recovery code' }).click();
  await expect(page.getByText('You are not allowed to do that.')).toBeVisible();
  await page.getByLabel("Member's email address").fill(engineer);
  await page.getByLabel('Lifetime').fill('1h');
  await page.getByRole('button', { name: 'Request recovery code' }).click();
  const row = page.locator('#requests tr', { hasText: engineer });
  await expect(row.locator('.request-state')).toContainText('Ready to reveal');
  await row.getByRole('button', { name: 'Reveal' }).click();
  const code = (await page.locator('.recovery-code .backup-code').innerText()).trim();
  expect(code).toMatch(/^\d{4} \d{4} \d{4}$/);
  await page.getByRole('link', { name: 'Done' }).click();
  await signOut(page);

  // The engineer signs in with it.
  await signInWithPassword(page, engineer, true);
  await page.getByRole('link', { name: 'Problem signing in?' }).click();
  await page.getByRole('link', { name: 'Use Backup Verification code' }).click();
  await page.getByLabel('Backup verification code').fill(code);
  await page.getByRole('button', { name: 'VERIFY' }).click();
  await expect(page).toHaveURL(/\/account\/recovered$/);
  await signOut(page);

  // The auditor reads the record and the groups, and changes nothing.
  await signInWithPassword(page, auditor, true);
  await expect(page).toHaveURL(/\/account$/);
  await page.goto('/admin/audit');
  await expect(page.locator('.audit-action', { hasText: 'group.scope_set' }).first()).toBeVisible();
  await expect(page.locator('.audit-action', { hasText: 'recovery_code.used' }).first()).toBeVisible();
  await page.goto('/admin/groups');
  await expect(page.locator('table.groups tbody tr', { hasText: 'Engineering' })).toContainText(helpdesk);
  await expect(page.getByRole('heading', { name: 'Create a group' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Delete Engineering' })).toHaveCount(0);
});
