// Signed webhooks (issue 14), as an owner meets them: the owner adds a webhook for the `mfa`
// events at a receiver on this machine, sees its secret once, turns on MFA, and the
// receiver gets exactly that event, signed as Standard Webhooks says (checked here with
// Node's own HMAC, under the secret the page showed); the page then lists the delivery.
// Once with JavaScript and once without.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, expect, hydrated, lifelineCli, password, signInWithPassword, turnOnMfa } from './fixtures';

type Received = { headers: IncomingHttpHeaders; body: string };

/** An HTTP receiver on 127.0.0.1 that keeps every request and answers 204. */
async function receiver(): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}/hook`, received };
}

/** Whether `delivery` is signed under `secret` (`whsec_` and base64), as Standard Webhooks
 * defines it: `v1,` and the base64 HMAC-SHA-256 of `id.timestamp.body`. */
function signedBy(delivery: Received, secret: string): boolean {
  const id = String(delivery.headers['webhook-id']);
  const timestamp = String(delivery.headers['webhook-timestamp']);
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${delivery.body}`).digest('base64');
  return String(delivery.headers['webhook-signature'])
    .split(' ')
    .some((signature) => signature === `v1,${expected}`);
}

for (const javascript of [true, false]) {
  const label = javascript ? 'with JavaScript' : 'without JavaScript';

  test.describe(label, () => {
    test.use({ javaScriptEnabled: javascript });

    test(`an owner adds a webhook, sees its secret once, and receives a signed event (${label})`, async ({ page }) => {
      const slug = javascript ? 'hooks-js' : 'hooks-html';
      const owner = `owner@${slug}.test`;
      lifelineCli(['create-org', '--name', slug, '--admin-email', owner], password);
      const { server, url, received } = await receiver();
      try {
        await signInWithPassword(page, owner, javascript);
        await expect(page).toHaveURL(/\/account$/);
        await page.getByRole('link', { name: 'Webhooks' }).click();
        await expect(page).toHaveURL(/\/admin\/webhooks$/);
        if (javascript) await hydrated(page);
        await expect(page.getByText('No webhooks yet.')).toBeVisible();

        // A plain-http address elsewhere is refused next to its field, and nothing is added.
        await page.getByLabel('Name').fill('SIEM');
        await page.getByLabel('Address (https://)').fill('http://siem.example.com/hook');
        await page.getByRole('button', { name: 'Add webhook' }).click();
        await expect(page.locator('#url-error')).toContainText('Use an https:// address');
        await expect(page.getByText('No webhooks yet.')).toBeVisible();

        await page.getByLabel('Name').fill('SIEM');
        await page.getByLabel('Address (https://)').fill(url);
        await page.getByLabel('mfa.*').check();
        await page.getByRole('button', { name: 'Add webhook' }).click();
        await expect(page.getByRole('heading', { name: 'Webhook added' })).toBeVisible();
        const secret = (await page.locator('#webhook-secret').innerText()).trim();
        expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);

        // Shown once: the list never shows it again.
        await page.getByRole('link', { name: 'Done' }).click();
        await expect(page).toHaveURL(/\/admin\/webhooks$/);
        await expect(page.getByRole('heading', { name: 'SIEM' })).toBeVisible();
        expect(await page.content()).not.toContain(secret);

        // An `mfa` event: the receiver gets it, signed, and nothing of another family.
        await page.goto('/account');
        await turnOnMfa(page);
        await expect.poll(() => received.length, { timeout: 20_000 }).toBeGreaterThan(0);
        // A moment more: a duplicate or an unwanted event would show by now.
        await page.waitForTimeout(2500);
        expect(received).toHaveLength(1);
        const [delivery] = received;
        expect(delivery.headers['content-type']).toBe('application/json');
        expect(signedBy(delivery, secret)).toBe(true);
        expect(signedBy({ ...delivery, body: delivery.body.replace('mfa.enabled', 'mfa.disabled') }, secret)).toBe(false);
        const age = Math.abs(Date.now() / 1000 - Number(delivery.headers['webhook-timestamp']));
        expect(age).toBeLessThan(300);
        const event = JSON.parse(delivery.body);
        expect(event.type).toBe('mfa.enabled');
        expect(event.data.actor).toBe(owner);
        expect(event.data.hash).toMatch(/^[0-9a-f]{64}$/);

        // The page lists it as delivered.
        await page.goto('/admin/webhooks');
        const row = page.locator('table.deliveries tr', { hasText: 'mfa.enabled' });
        await expect(row).toContainText('Delivered');
      } finally {
        server.close();
      }
    });
  });
}
