// Pages say only what Lifeline said. An error in an address (`?__path=…&__err=…`, how a plain
// form's failed post comes back) is shown only on the page the server served with it, and the
// server serves none it did not send: not when the address is opened as a link, nor when it is
// a `next` followed after confirming the password, with JavaScript on. (The server's side is
// tested over HTTP in server/tests/it.)
import {
  test,
  expect,
  hydrated,
  lifelineCli,
  password,
  signInWithPassword,
} from './fixtures';

const attacker = 'Your account is suspended: call +1 555 0100 to restore it';

/** `page` with an error of `/api/<endpoint>` in its address, as a crafted link would have it. */
function crafted(page: string, endpoint: string): string {
  // Leptos's encoding: the error as JSON, in URL-safe base64 with padding.
  const error = Buffer.from(JSON.stringify({ Refused: attacker }))
    .toString('base64')
    .replace(/\+/g, '-')
    .replace(/\//g, '_');
  const query = new URLSearchParams({ __path: `/api/${endpoint}`, __err: error });
  return `${page}?${query}`;
}

test('a crafted link and a crafted next show no sentence of an attacker', async ({ page }) => {
  const owner = 'owner@page-errors.test';
  lifelineCli(['create-org', '--name', 'Page Errors Org', '--admin-email', owner], password);
  await signInWithPassword(page, owner, true);
  await expect(page).toHaveURL(/\/account$/);

  // Opened as a link: the server sends the browser to the page without the error.
  await page.goto(crafted('/admin/members', 'members/add'));
  await expect(page).toHaveURL(/\/admin\/members$/);
  await expect(page.getByRole('heading', { name: 'Add a member' })).toBeVisible();
  await expect(page.getByText(attacker)).toHaveCount(0);

  // Followed after confirming the password, with the page's islands live: the confirmation
  // sends the browser there, and the server drops the error on the way.
  const next = crafted('/admin/members', 'members/add');
  await page.goto(`/account/confirm?next=${encodeURIComponent(next)}`);
  await hydrated(page);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page).toHaveURL(/\/admin\/members$/);
  await expect(page.getByRole('heading', { name: 'Add a member' })).toBeVisible();
  await expect(page.getByText(attacker)).toHaveCount(0);

  // A real failed post from that page still shows Lifeline's own words.
  await page.getByLabel('Email address').fill('new@page-errors.test');
  await page.getByLabel('Initial password').fill('short');
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.locator('#password-error')).toHaveText('Use at least 10 characters.');
  await expect(page.getByText(attacker)).toHaveCount(0);
});
