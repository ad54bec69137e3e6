// A settled dispute in the portal (issues #28, #29): tests/dispute_month.rs runs
// `node disputes.mjs CONFIG_JSON` against bob's node once the November dispute is closed. The
// page lists the pair's agreements, statements and disputes; the dispute's bundle downloads and
// verifies in the browser, telling who claimed what and what was settled. Exit 0 when every step
// held (browser.mjs: no request left the node's origin, no page error).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { open, run } from './browser.mjs';

const config = JSON.parse(process.argv[2]);
const session = await open(config);
const { page, shoot, testid } = session;

await run(session, async (step) => {
  await step('the pair on the page', async () => {
    await page.goto(`${config.url}#/interconnect`);
    await testid('ic-partner').fill(config.partner);
    await testid('ic-show').click();
    await testid('dispute').first().waitFor();
    assert.match(await testid('ic-status').textContent(), /version 2 in force; 1 statements, 1 disputes$/);
    assert.equal(await testid('agreements').locator('tr').count(), 3, 'a heading and two versions');
    assert.match(await testid('statements').textContent(), /final/);
    assert.match(await testid('dispute').first().textContent(), /closed at #\d+/);
  });
  await step('the dispute verified in the browser', async () => {
    await testid('verify-dispute').first().click();
    await testid('verdict-result').waitFor({ timeout: 60_000 });
    const verdict = await testid('dispute-verdict').textContent();
    assert.match(await testid('verdict-result').locator('h3').textContent(), /^VALID: dispute /);
    for (const expected of config.expected) assert.ok(verdict.includes(expected), `${expected} in ${verdict}`);
    await shoot('disputes');
  });
  await step('the dispute bundle downloaded', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), testid('download-dispute').first().click()]);
    const path = join(config.dir, 'downloaded-dispute.json');
    await download.saveAs(path);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).format, 'cdrchain-dispute-bundle');
  });
});
