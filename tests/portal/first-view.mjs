// How long the portal's first view takes to show (issue #29: under 1 s on a dev node holding 10
// million CDRs), measured, not asserted: `node first-view.mjs URL [RUNS]` loads the page RUNS
// times (default 5), each in a fresh browser context, and prints the milliseconds from
// navigation until the Chain page shows the head, the hour's charts and the validators. Run it
// against a loaded node (docs/benchmarks.md gives the whole procedure).

import { open } from './browser.mjs';

const [url, runs = '5'] = process.argv.slice(2);
const times = [];
for (let i = 0; i < Number(runs); i += 1) {
  const session = await open({ url });
  const { page, testid } = session;
  const started = performance.now();
  await page.goto(url);
  await page.waitForFunction(() => /^#\d+$/.test(document.querySelector('[data-testid=head]')?.textContent ?? ''));
  await testid('cdrs-chart').waitFor();
  await testid('validator').first().waitFor();
  times.push(Math.round(performance.now() - started));
  const head = await testid('head').textContent();
  const summary = await testid('activity-summary').textContent();
  await session.browser.close();
  if (session.foreign.length || session.errors.length) throw new Error(JSON.stringify(session));
  if (i === 0) console.error(`head ${head}; ${summary}`);
}
const sorted = [...times].sort((a, b) => a - b);
console.log(JSON.stringify({ url, runs: times, median_ms: sorted[Math.floor(sorted.length / 2)], max_ms: sorted.at(-1) }));
