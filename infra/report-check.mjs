// Opens the demo report in headless Chromium (Debian's /usr/bin/chromium), with every account
// and message preview unfolded, and takes a screenshot of its top. Prints what it saw as JSON
// and exits 1 when the page logged a console error, threw, or asked the network for anything:
// the report must be self-contained.
//   node infra/report-check.mjs REPORT.html SCREENSHOT.png
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';

const [report, shot] = process.argv.slice(2);
if (!report || !shot) {
  console.error('usage: node infra/report-check.mjs REPORT.html SCREENSHOT.png');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
let browser;
try {
  browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
} catch (e) {
  console.error(`report-check: cannot start ${executablePath} (install Debian's chromium): ${e.message}`);
  process.exit(2);
}
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const errors = [];
const outside = [];
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
page.on('pageerror', (e) => errors.push(String(e)));
page.on('request', (r) => {
  const u = r.url();
  if (!u.startsWith('file:') && !u.startsWith('data:') && !u.startsWith('about:')) outside.push(u);
});
await page.goto(pathToFileURL(report).href, { waitUntil: 'load' });
const seen = await page.evaluate(() => ({
  title: document.title,
  accounts: document.querySelectorAll('details.account').length,
  charts: document.querySelectorAll('svg').length,
  tiles: document.querySelectorAll('.tile').length,
  previews: document.querySelectorAll('iframe, pre').length,
  text: document.body.innerText.length,
}));
await page.screenshot({ path: shot, fullPage: false });
// Unfold everything: each preview's frame renders its email, which must not reach out either.
await page.evaluate(() => document.querySelectorAll('details').forEach((d) => { d.open = true; }));
await page.waitForTimeout(500);
seen.height = await page.evaluate(() => document.body.scrollHeight);
await browser.close();
const result = { ...seen, console_errors: errors, requests_outside: outside };
console.log(JSON.stringify(result));
process.exit(errors.length || outside.length ? 1 : 0);
