// The start page, as a person meets it: with its islands live and without JavaScript.
import { test, expect, hydrated } from './fixtures';

test('the start page hydrates under its content policy and checks the system status', async ({ page }) => {
  const consoleErrors: string[] = [];
  const policyReports: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
    if (message.text().includes('Content Security Policy')) policyReports.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(error.message));
  // Every Content-Security-Policy violation, as the page itself sees it (an init script is
  // added by the browser, not by the page, so the policy does not apply to it).
  await page.addInitScript(() => {
    const violations: string[] = [];
    (window as unknown as { cspViolations: string[] }).cspViolations = violations;
    document.addEventListener('securitypolicyviolation', (event) =>
      violations.push(`${event.effectiveDirective} blocked ${event.blockedURI}`),
    );
  });

  const response = await page.goto('/');
  // The page is served under a nonce-based policy, so hydrating proves the policy admits it.
  expect(response?.headers()['content-security-policy']).toMatch(
    /script-src 'self' 'nonce-[\w-]+' 'wasm-unsafe-eval'/,
  );
  await expect(page).toHaveTitle('Lifeline');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Lifeline');
  await expect(page.getByRole('link', { name: 'Sign in' })).toHaveAttribute('href', '/sign-in');
  await hydrated(page);

  // The check is a plain form: the server answers it with the page and the outcome.
  await page.getByRole('button', { name: 'Check status' }).click();
  await expect(page.getByText('All systems operational')).toBeVisible();
  expect(page.url()).toMatch(/\/\?check=status$/);
  await hydrated(page);
  // Nothing the page or its hydration does is refused by the policy.
  expect(policyReports).toEqual([]);
  const violations = await page.evaluate(
    () => (window as unknown as { cspViolations: string[] }).cspViolations,
  );
  expect(violations).toEqual([]);
  expect(consoleErrors).toEqual([]);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the start page still renders with its way in', async ({ page }) => {
    await page.goto('/');
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Lifeline');
    await expect(page.getByRole('link', { name: 'Sign in' })).toBeVisible();
    await expect(page.locator('body')).not.toHaveAttribute('data-hydrated', '');
    await page.getByRole('button', { name: 'Check status' }).click();
    await expect(page.getByText('All systems operational')).toBeVisible();
  });
});

test('an unknown address shows the not-found page', async ({ page }) => {
  const response = await page.goto('/no/such/page');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await page.getByRole('link', { name: 'Back to the start page' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Lifeline');
});
