// "Request Data Backup" (issue 15), as an owner meets it: from the account page to the backup
// page, a passphrase too easy to guess refused next to its field, a good one accepted; the
// page follows the backup being built (polling with JavaScript, refreshing itself without)
// until it is ready; the owner downloads it, and the file restores with the command line
// into a new database with that passphrase (and not with another); then the owner deletes
// it. Once with JavaScript and once without.
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { binary, secretKeyFileOf } from '../global-setup';
import { test, expect, hydrated, lifelineCli, password, signInWithPassword } from './fixtures';
import { mailTo } from './mail';

const passphrase = 'orbit lantern meadow staple copper';

/** `lifeline backup restore --file archive` into a new SQLite database that shares the test
 * server's key (the same installation); returns the exit status and output. */
function restoreIntoNewDatabase(archive: string, typed: string): { ok: boolean; output: string } {
  const folder = mkdtempSync(path.join(tmpdir(), 'lifeline-restore-'));
  const databaseUrl = `sqlite://${folder}/restored.db`;
  const serverDatabase = process.env.LIFELINE_E2E_DATABASE_URL ?? '';
  copyFileSync(secretKeyFileOf(serverDatabase), secretKeyFileOf(databaseUrl));
  const run = spawnSync(binary, ['backup', 'restore', '--file', archive], {
    input: `${typed}\n`,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      LIFELINE_SECRET_KEY_FILE: secretKeyFileOf(databaseUrl),
    },
    encoding: 'utf8',
  });
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` };
}

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript, acceptDownloads: true });

    test(`an owner requests a data backup, follows it, downloads and restores it (${label})`, async ({ page }) => {
      test.setTimeout(120_000);
      const slug = javascript ? 'backup-js' : 'backup-html';
      const owner = `owner@${slug}.test`;
      lifelineCli(['create-org', '--name', slug, '--admin-email', owner], password);
      lifelineCli(['create-user', '--org', slug, '--email', `member@${slug}.test`, '--role', 'member'], password);

      await signInWithPassword(page, owner, javascript);
      await expect(page).toHaveURL(/\/account$/);
      await page.getByRole('link', { name: 'Data backup' }).click();
      await expect(page).toHaveURL(/\/admin\/backup$/);
      if (javascript) await hydrated(page);
      await expect(page.getByText('No backups requested yet.')).toBeVisible();

      // Too easy to guess: refused next to the field, and nothing is requested.
      await page.getByLabel('Passphrase', { exact: true }).fill('password1234');
      await page.getByLabel('Passphrase again').fill('password1234');
      await page.getByRole('button', { name: 'Request backup' }).click();
      await expect(page.locator('#passphrase-error')).toContainText('harder to guess');
      await expect(page.getByText('No backups requested yet.')).toBeVisible();

      await page.getByLabel('Passphrase', { exact: true }).fill(passphrase);
      await page.getByLabel('Passphrase again').fill(passphrase);
      await page.getByRole('button', { name: 'Request backup' }).click();
      await expect(page.getByText('Backup requested: it is being built below.')).toBeVisible();
      // The passphrase is nowhere in the page or its address.
      expect(page.url()).not.toContain('orbit');
      expect(await page.content()).not.toContain(passphrase);

      // The page follows it until it is ready, by itself.
      await expect(page.getByText(/^Ready — kept until/)).toBeVisible({ timeout: 60_000 });
      const row = page.locator('table.backups tbody tr').first();
      await expect(row).toContainText(owner);
      // The requester is told, by mail as in the app; the notice holds no passphrase.
      const notice = await mailTo(owner, /^Your data backup is ready$/);
      expect(notice.text).toContain('Data backup page');
      expect(notice.raw).not.toContain(passphrase);

      const [download] = await Promise.all([
        page.waitForEvent('download'),
        row.getByRole('link', { name: 'Download' }).click(),
      ]);
      expect(download.suggestedFilename()).toMatch(new RegExp(`^lifeline-${slug}-.*\\.age$`));
      const archive = path.join(mkdtempSync(path.join(tmpdir(), 'lifeline-download-')), 'backup.age');
      await download.saveAs(archive);

      // Only that passphrase opens it, and it brings the organization back.
      const wrong = restoreIntoNewDatabase(archive, 'not the passphrase at all, no');
      expect(wrong.ok).toBe(false);
      expect(wrong.output).toContain('the passphrase does not open this archive');
      const restored = restoreIntoNewDatabase(archive, passphrase);
      expect(restored.output).toContain(`(--org ${slug})`);
      expect(restored.ok).toBe(true);

      // The download is counted, then the owner deletes the archive before its time.
      await page.reload();
      if (javascript) await hydrated(page);
      await expect(page.locator('table.backups tbody tr').first()).toContainText('1 download');
      await page.locator('table.backups tbody tr').first().getByRole('button', { name: 'Delete' }).click();
      await expect(page.getByText('Backup deleted.')).toBeVisible();
      await expect(page.locator('table.backups tbody tr').first()).toContainText('Deleted');
      await expect(page.getByRole('link', { name: 'Download' })).toHaveCount(0);

      // Leaving the page leaves it: nothing brings the member back to it.
      await page.getByRole('navigation').getByRole('link', { name: 'Account' }).click();
      await expect(page).toHaveURL(/\/account$/);
      await page.waitForTimeout(3_000);
      await expect(page).toHaveURL(/\/account$/);

      // And in the app.
      await page.goto('/account/notifications');
      await expect(page.getByText('Your data backup is ready').first()).toBeVisible();
    });
  });
}

test('a member who may not request backups is refused, and sees no link to them', async ({ page }) => {
  const slug = 'backup-member';
  const member = `member@${slug}.test`;
  lifelineCli(['create-org', '--name', slug, '--admin-email', `owner@${slug}.test`], password);
  lifelineCli(['create-user', '--org', slug, '--email', member, '--role', 'admin'], password);
  await signInWithPassword(page, member, false);
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByRole('link', { name: 'Data backup' })).toHaveCount(0);
  await page.goto('/admin/backup');
  await expect(page.getByRole('alert')).toContainText('You are not allowed to do that.');
  const response = await page.request.get('/admin/backup/1/download');
  expect(response.status()).toBe(403);
});
