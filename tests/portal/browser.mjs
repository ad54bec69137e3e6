// What every portal browser test shares: Debian's Chromium through playwright-core with this
// machine kind's headless flags, a 1280×800 page, every request outside the node's origin blocked
// and recorded, page errors recorded, and screenshots when the config names a directory. What
// the config lists as `neverSent` (a secret, a telephone number) must appear in no request's URL
// or body.

import { join } from 'node:path';
import { chromium } from 'playwright-core';

// The flags this machine kind needs for a headless Chromium as root, with no network beyond it.
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const TIMEOUT_MS = 20_000;

export async function open(config) {
  const origin = new URL(config.url).origin;
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  context.setDefaultTimeout(TIMEOUT_MS);
  const foreign = [];
  const sent = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    sent.push(`${url}\n${route.request().postData() ?? ''}`);
    if (url.startsWith(origin + '/') || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const shoot = async (name) => {
    if (config.screenshots) await page.screenshot({ path: join(config.screenshots, `portal-${name}.png`) });
  };
  return { browser, page, foreign, sent, neverSent: config.neverSent ?? [], errors, shoot, testid: (id) => page.getByTestId(id) };
}

/** Runs the named steps in order; prints the JSON report and sets the exit code. */
export async function run(session, body) {
  const steps = [];
  const step = async (name, run) => {
    await run();
    steps.push(name);
  };
  try {
    await body(step);
    if (session.foreign.length) throw new Error(`requests left the node's origin: ${session.foreign.join(', ')}`);
    if (session.errors.length) throw new Error(`errors in the page: ${session.errors.join('; ')}`);
    for (const secret of session.neverSent) {
      const leak = session.sent.find((request) => request.includes(secret));
      if (leak) throw new Error(`a request carried ${JSON.stringify(secret)}: ${leak.slice(0, 200)}`);
    }
    console.log(JSON.stringify({ ok: true, steps }));
  } catch (error) {
    console.log(JSON.stringify({ ok: false, steps, failed: error.message, foreign: session.foreign, errors: session.errors }));
    process.exitCode = 1;
  } finally {
    await session.browser.close();
  }
}
