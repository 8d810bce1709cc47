// Issue 17: time to interactive of the sign-in page and the codes sheet, as a person on a
// mid-range phone meets them on a first visit: Chromium with the CPU throttled 4× and the cache
// disabled, on this machine's loopback and on "Slow 4G". Prints a Markdown fragment and writes
// it to $LIFELINE_BENCH_OUT/8-tti.md when that is set (`make bench`, part 8, through
// scripts/bench-tti.sh). Not part of `make test` (perf.config.ts runs this folder).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, CDPSession, Page } from '@playwright/test';
import { test, expect, hydrated, lifelineCli, password, signInWithPassword, turnOnMfa } from '../tests/fixtures';
import { binary, siteRoot } from '../global-setup';

const loadsPerRow = 7;
const cpuSlowdown = 4;

type Network = { name: string; conditions?: { latency: number; downloadThroughput: number; uploadThroughput: number } };
const networks: Network[] = [
  { name: 'loopback' },
  // Chromium DevTools' "Slow 4G" preset; throughputs in bytes per second.
  { name: 'Slow 4G', conditions: { latency: 150, downloadThroughput: 200_000, uploadThroughput: 93_750 } },
];

type Load = { fcp: number; interactive: number; wasmBytes: number; jsBytes: number };
/** `page` heads the table's row, `short` names it in the summary line. */
type Row = { page: string; short: string; network: string; loads: Load[] };
type SignedIn = Awaited<ReturnType<BrowserContext['storageState']>>;
type Timings = { fcp?: number; hydrated?: number };

/** Runs in every document before its own scripts: notes First Contentful Paint and the moment
 * the app sets `data-hydrated` on <body>, in the document's own clock (0 = navigation start),
 * so that Playwright's polling adds nothing to the figure. */
function recordTimings() {
  const timings: Timings = {};
  (window as unknown as { tti: Timings }).tti = timings;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntriesByName('first-contentful-paint')) timings.fcp ??= entry.startTime;
  }).observe({ type: 'paint', buffered: true });
  const watchBody = (body: HTMLElement) => {
    const seen = () => {
      if (!body.hasAttribute('data-hydrated')) return false;
      timings.hydrated ??= performance.now();
      return true;
    };
    if (seen()) return;
    const observer = new MutationObserver(() => {
      if (seen()) observer.disconnect();
    });
    observer.observe(body, { attributes: true, attributeFilter: ['data-hydrated'] });
  };
  // The script runs before the parser has made <body>.
  if (document.body) return watchBody(document.body);
  const untilBody = new MutationObserver(() => {
    if (!document.body) return;
    untilBody.disconnect();
    watchBody(document.body);
  });
  untilBody.observe(document, { childList: true, subtree: true });
}

/** A page in a browser context of its own (nothing of an earlier load in memory), the HTTP
 * cache disabled so that every load downloads the wasm again. */
async function freshPage(browser: Browser, baseURL: string, signedIn?: SignedIn) {
  const context = await browser.newContext({ baseURL, storageState: signedIn });
  const page = await context.newPage();
  // The codes sheet's "Leave site?" prompt must not hold up closing it.
  page.on('dialog', (dialog) => dialog.accept());
  await page.addInitScript(recordTimings);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  return { context, page, cdp };
}

async function slowDown(cdp: CDPSession, network: Network) {
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: cpuSlowdown });
  if (network.conditions) {
    await cdp.send('Network.emulateNetworkConditions', { offline: false, ...network.conditions });
  }
}

/** Waits for the document at `pathname` to hydrate, then reads its figures. */
async function measured(page: Page, pathname: string): Promise<Load> {
  await page.waitForFunction(
    (pathname) => {
      const timings = (window as unknown as { tti?: Timings }).tti;
      return location.pathname === pathname && timings?.hydrated !== undefined && timings.fcp !== undefined;
    },
    pathname,
    { polling: 250, timeout: 0 },
  );
  const load = await page.evaluate(() => {
    const timings = (window as unknown as { tti: Timings }).tti;
    const resources = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
    const transferred = (extension: string) =>
      resources
        .filter((entry) => new URL(entry.name).pathname.endsWith(extension))
        .reduce((sum, entry) => sum + entry.transferSize, 0);
    return {
      fcp: timings.fcp!,
      interactive: timings.hydrated!,
      wasmBytes: transferred('.wasm'),
      jsBytes: transferred('.js'),
    };
  });
  expect(load.wasmBytes, 'the wasm came from a cache, not the network').toBeGreaterThan(0);
  return load;
}

async function loadSignIn(browser: Browser, baseURL: string, network: Network): Promise<Load> {
  const { context, page, cdp } = await freshPage(browser, baseURL);
  await slowDown(cdp, network);
  await page.goto('/sign-in', { waitUntil: 'commit' });
  const load = await measured(page, '/sign-in');
  await context.close();
  return load;
}

/** A member of a new organization with MFA on and a set of backup codes saved, signed in. */
async function memberWithCodes(browser: Browser, baseURL: string): Promise<SignedIn> {
  const email = 'tti@perf.test';
  lifelineCli(['create-org', '--name', 'Perf', '--admin-email', email], password);
  const context = await browser.newContext({ baseURL });
  const page = await context.newPage();
  await signInWithPassword(page, email, true);
  await expect(page).toHaveURL(/\/account$/);
  await turnOnMfa(page);
  await page.locator('#recovery').getByRole('button', { name: 'Generate New Codes' }).click();
  await page.getByLabel('I have saved these codes').check();
  await page.getByRole('button', { name: 'Done' }).click();
  await expect(page).toHaveURL(/\/account\?saved=1$/);
  const signedIn = await context.storageState();
  await context.close();
  return signedIn;
}

/** The codes sheet is the answer to the account page's "Generate New Codes" form (a POST, so
 * no address to open): the account page loads at full speed, then the form's navigation is
 * timed. Returns the figures and the session as it is after (cookies may have changed). */
async function loadCodesSheet(
  browser: Browser,
  baseURL: string,
  network: Network,
  signedIn: SignedIn,
): Promise<[Load, SignedIn]> {
  const { context, page, cdp } = await freshPage(browser, baseURL, signedIn);
  await page.goto('/account');
  // Settled, so that its own hydration does not share the throttled CPU with the sheet's.
  await hydrated(page);
  const recovery = page.locator('#recovery');
  if ((await recovery.locator('#generate-password').count()) > 0) {
    // The password was confirmed too long ago (a slow run): confirm it again, untimed.
    await page.goto('/account/confirm?next=%2Faccount');
    await hydrated(page);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Confirm' }).click();
    await expect(page).toHaveURL(/\/account$/);
    await hydrated(page);
  }
  await slowDown(cdp, network);
  await recovery.getByRole('button', { name: 'Generate New Codes' }).click();
  const load = await measured(page, '/account/backup-codes');
  await expect(page.locator('.codes-sheet .backup-code')).toHaveCount(10);
  const after = await context.storageState();
  await context.close();
  return [load, after];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const inSeconds = (ms: number) => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
const seconds = (ms: number) => `${inSeconds(ms)} s`;
const size = (bytes: number) => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} KB`);
const fromRoot = (file: string) => path.relative(path.resolve(__dirname, '../..'), file) || '.';

function report(rows: Row[], chromium: string): string {
  const table = rows.map(({ page, network, loads }) => {
    const interactive = loads.map((load) => load.interactive);
    return (
      `| ${page} | ${network} | ${loads.length} | ${seconds(median(loads.map((load) => load.fcp)))} ` +
      `| ${seconds(median(interactive))} | ${inSeconds(Math.min(...interactive))}–${seconds(Math.max(...interactive))} ` +
      `| wasm ${size(median(loads.map((load) => load.wasmBytes)))} + JS ${size(median(loads.map((load) => load.jsBytes)))} |`
    );
  });
  const slow = rows.filter((row) => row.network === 'Slow 4G');
  return [
    '## 8. Time to interactive in Chromium (CPU throttled 4×)',
    '',
    `\`end2end/perf/tti.spec.ts\`: Debian's Chromium ${chromium}, driven by Playwright, with the CPU throttled ` +
      `${cpuSlowdown}× and the cache disabled (every load downloads the wasm again, as a first visit does), loads ` +
      `each page ${loadsPerRow} times, each in a fresh browser context, over loopback and over "Slow 4G" (150 ms, ` +
      `1.6 Mbit/s down, 750 kbit/s up); "interactive" is the moment the wasm app has hydrated the server-rendered ` +
      `page (\`<body data-hydrated>\`) and FCP is First Contentful Paint, both from the start of the navigation, ` +
      `against \`${fromRoot(binary)}\` serving \`${fromRoot(siteRoot)}\`.`,
    '',
    '| page | network | loads | FCP median | interactive median | interactive min–max | wasm + JS transferred |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...table,
    '',
    `- Measured: on Slow 4G, the median time to interactive is ${slow
      .map((row) => `${seconds(median(row.loads.map((load) => load.interactive)))} for ${row.short}`)
      .join(' and ')} (${loadsPerRow} loads each).`,
    '',
  ].join('\n');
}

test.describe.configure({ mode: 'serial' });

const rows: Row[] = [];
let signedIn: SignedIn | undefined;

for (const network of networks) {
  test(`/sign-in, signed out, ${network.name}`, async ({ browser, baseURL }) => {
    const loads: Load[] = [];
    for (let i = 0; i < loadsPerRow; i++) loads.push(await loadSignIn(browser, baseURL!, network));
    rows.push({ page: '`/sign-in`, signed out', short: '`/sign-in`', network: network.name, loads });
  });
}

for (const network of networks) {
  test(`the codes sheet, ${network.name}`, async ({ browser, baseURL }) => {
    signedIn ??= await memberWithCodes(browser, baseURL!);
    const loads: Load[] = [];
    for (let i = 0; i < loadsPerRow; i++) {
      const [load, after] = await loadCodesSheet(browser, baseURL!, network, signedIn);
      loads.push(load);
      signedIn = after;
    }
    rows.push({
      page: 'the codes sheet (`/account/backup-codes`, signed in)',
      short: 'the codes sheet',
      network: network.name,
      loads,
    });
  });
}

test('the report', async ({ browser }) => {
  const fragment = report(rows, browser.version());
  console.log(fragment);
  const out = process.env.LIFELINE_BENCH_OUT;
  if (out) writeFileSync(path.join(out, '8-tti.md'), fragment);
});
