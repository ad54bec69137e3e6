// The partner portal in a real browser (issue #29): Debian's Chromium driven by playwright-core.
// tests/portal.rs starts a node with committed CDRs and runs `node portal.mjs CONFIG_JSON`; this
// script signs in, searches, downloads a proof bundle, verifies it and a tampered copy in the
// page, computes the settlement with a partner, and asserts that no request leaves the node's
// origin (browser.mjs). Exit 0 when every step held; the failed step's message otherwise. With
// `screenshots` in the config it saves each page there.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open, run } from './browser.mjs';

const config = JSON.parse(process.argv[2]);
const session = await open(config);
const { page, shoot, testid } = session;

/** The bars' colours (portal/web/charts.js), as the canvas holds them. */
const BLUE = [0x1f, 0x4f, 0xd1];
const ORANGE = [0xd9, 0x77, 0x06];

/** Pixels of colour `rgb` on the canvas of chart `id`, where uPlot drew its bars. */
async function barPixels(id, rgb) {
  return testid(id).evaluate((box, [r, g, b]) => {
    const canvas = box.querySelector('canvas');
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b) n += 1;
    return n;
  }, rgb);
}

await run(session, async (step) => {
  await step('sign-in', async () => {
    await page.goto(config.url);
    await testid('token').waitFor();
    await testid('token').fill('not-the-token');
    await testid('sign-in').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=sign-in-error]').textContent.length > 0);
    await testid('token').fill(config.token);
    await testid('sign-in').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=who]').textContent.includes(' on '));
    assert.equal(await testid('who').textContent(), `${config.operator} on ${config.chain}`);
  });
  await step('chain page', async () => {
    await page.waitForFunction(() => /^#\d+$/.test(document.querySelector('[data-testid=head]')?.textContent ?? ''));
    assert.ok((await testid('validators').locator('tbody tr').count()) >= 1);
    // The hour's activity: sixty buckets per chart (uPlot, from npm), the CDRs all counted and
    // drawn, and the validator's last signature on the head.
    assert.equal(await testid('blocks-chart').getAttribute('data-slots'), '60');
    assert.equal(await testid('cdrs-chart').getAttribute('data-slots'), '60');
    assert.equal(await testid('cdrs-chart').getAttribute('data-totals'), String(config.cdrs));
    assert.ok(await barPixels('blocks-chart', BLUE) > 0, 'the blocks are drawn');
    assert.ok(await barPixels('cdrs-chart', ORANGE) > 0, 'the CDRs are drawn');
    assert.match(await testid('activity-summary').textContent(), new RegExp(` ${config.cdrs} CDRs `));
    assert.equal(await testid('last-signed').first().textContent(), await testid('head').textContent());
    assert.match(await testid('evidence').textContent(), /^none: /);
    // The node reads the dev chain's contract on anvil (RSK regtest): nothing anchored yet.
    assert.equal(await testid('rsk-anchor').textContent(), 'nothing anchored yet');
    assert.match(await testid('rsk-anchor-detail').textContent(), new RegExp(`contract ${config.contract} on chain 33, RSK block \\d+, read \\d+ s ago`));
    await shoot('chain');
  });
  let bundlePath;
  await step('search by id, download and verify its proof', async () => {
    await page.goto(`${config.url}#/records`);
    await testid('query').fill(config.id);
    await testid('search').click();
    await testid('record-id').first().waitFor();
    assert.equal(await testid('record-id').first().textContent(), config.id);
    const [download] = await Promise.all([page.waitForEvent('download'), testid('download-proof').click()]);
    bundlePath = join(config.dir, 'downloaded-proof.json');
    await download.saveAs(bundlePath);
    assert.equal(JSON.parse(readFileSync(bundlePath, 'utf8')).format, 'cdrchain-proof');
    await testid('verify-proof').click();
    await testid('verdict-result').waitFor();
    assert.match(await testid('verdict-result').locator('h3').textContent(), /^VALID: inclusion /);
    await shoot('records');
  });
  await step('search by call id', async () => {
    await testid('query').fill(config.callId);
    await testid('search').click();
    await page.waitForFunction((id) => document.querySelector('[data-testid=search-status]').textContent.includes(id), config.callId);
    assert.match(await testid('search-status').textContent(), /^1 record of /);
  });
  await step('search by telephone number, hashed in the page', async () => {
    const number = config.number;
    await testid('query').fill(number.written);
    await testid('number-options').waitFor();
    assert.equal(await testid('secret').inputValue(), number.secret, 'the dev chain\'s public secret is prefilled');
    // Another secret gives another digest: nothing found.
    await testid('secret').fill('not the consortium secret');
    await testid('search').click();
    await page.waitForFunction(() => /^0 records of tel:/.test(document.querySelector('[data-testid=search-status]').textContent));
    await testid('secret').fill(number.secret);
    await testid('search').click();
    await page.waitForFunction((n) => document.querySelector('[data-testid=search-status]').textContent.startsWith(`${n} record`), number.records.length);
    assert.match(await testid('search-status').textContent(), new RegExp(`of ${number.canonical.replace('+', '\\+')} \\(telephone number\\), newest first$`));
    assert.deepEqual(await testid('record-id').allTextContents(), number.records, 'newest first');
    assert.deepEqual(await testid('record-note').allTextContents(), number.roles.map((role) => `${number.canonical} is the ${role}`));
    await testid('verify-proof').first().click();
    await testid('verdict-result').waitFor();
    assert.match(await testid('verdict-result').locator('h3').textContent(), /^VALID: inclusion /);
    await shoot('records-number');
  });
  await step('verify the downloaded bundle and a tampered copy', async () => {
    await page.goto(`${config.url}#/verify`);
    await testid('bundle-file').setInputFiles(bundlePath);
    await testid('verdict-result').waitFor();
    assert.match(await testid('verdict-result').locator('h3').textContent(), /^VALID: inclusion /);
    assert.match(await testid('verifier-digest').textContent(), /^[0-9a-f]{64}$/);
    await shoot('verify');
    // The CDR's end time, one millisecond later, in both copies: the signed header no longer
    // holds it, and the check that says so is named.
    const bundle = JSON.parse(readFileSync(bundlePath, 'utf8'));
    bundle.cdr.end_ms += 1;
    const tampered = join(config.dir, 'tampered-proof.json');
    writeFileSync(tampered, JSON.stringify(bundle, null, 2));
    await page.goto(`${config.url}#/records`);
    await page.goto(`${config.url}#/verify`);
    await testid('bundle-file').setInputFiles(tampered);
    await testid('verdict-result').waitFor();
    assert.match(await testid('verdict-result').locator('h3').textContent(), /^INVALID: inclusion /);
    const failed = await testid('check').filter({ hasText: 'FAIL' }).allTextContents();
    assert.ok(failed.some((row) => row.startsWith('FAILcdr')), `failed checks: ${failed}`);
    await shoot('verify-tampered');
  });
  await step('reconciliation of an uploaded export', async () => {
    const rec = config.reconcile;
    await page.goto(`${config.url}#/reconcile`);
    await testid('rec-partner').fill(rec.partner);
    await testid('rec-file').setInputFiles(rec.file);
    await page.waitForFunction(() => /calls differ$/.test(document.querySelector('[data-testid=rec-status]').textContent));
    assert.equal(await testid('rec-matched').textContent(), String(rec.matched));
    assert.equal(await testid('rec-mismatched').textContent(), String(rec.mismatched.length));
    assert.equal(await testid('rec-missing-on-chain').textContent(), String(rec.missingOnChain.length));
    assert.equal(await testid('rec-missing-in-file').textContent(), String(rec.missingInFile.length));
    const rows = async (id) => (await testid(id).locator('tr').allInnerTexts()).slice(1).map((row) => row.split('\t'));
    assert.deepEqual((await rows('rec-mismatched-rows')).map(([line, id, , field]) => [Number(line), id, field]), rec.mismatched);
    assert.deepEqual((await rows('rec-missing-on-chain-rows')).map(([line]) => Number(line)), rec.missingOnChain);
    assert.deepEqual((await rows('rec-missing-in-file-rows')).map(([id]) => id), rec.missingInFile);
    const [download] = await Promise.all([page.waitForEvent('download'), testid('rec-csv').click()]);
    const csvPath = join(config.dir, 'portal-reconciliation.csv');
    await download.saveAs(csvPath);
    assert.equal(readFileSync(csvPath, 'utf8'), rec.csv, 'the CSV `cdrchain reconcile --csv` writes');
    await shoot('reconcile');
  });
  await step('operator view: ingest per source', async () => {
    const op = config.operatorView;
    await page.goto(`${config.url}#/operator`);
    await testid(`op-source-${op.source}`).waitFor();
    const cells = (await testid(`op-source-${op.source}`).locator('td').allTextContents());
    assert.deepEqual(cells.slice(0, 4), [op.source, String(op.accepted), String(op.duplicates), op.refused]);
    assert.equal(await testid('op-queue').textContent(), '0');
    await testid('op-admission-none').waitFor();
    assert.equal(await testid('op-gap').textContent(), `none declared by ${config.operator}`);
    await shoot('operator');
  });
  await step('a partner token sees only its operator\'s records', async () => {
    const signInAs = async (token) => {
      await page.goto(`${config.url}#/records`);
      await page.locator('#sign-out').click();
      await testid('token').fill(token);
      await testid('sign-in').click();
      await page.waitForFunction(() => document.querySelector('[data-testid=who]').textContent.includes(' on '));
      await page.goto(`${config.url}#/records`);
    };
    const search = async (query) => {
      await testid('query').fill(query);
      await testid('search').click();
      await page.waitForFunction((q) => document.querySelector('[data-testid=search-status]').textContent.includes(q), query);
      return testid('search-status').textContent();
    };
    // charlie is a party to none of alice's calls with bob: nothing of them, and no operator view.
    await signInAs(config.partners.charlie);
    assert.match(await search(config.callId), /^0 records of /);
    await page.goto(`${config.url}#/operator`);
    await page.waitForFunction(() => /^This view is for the node's own operator/.test(document.querySelector('[data-testid=op-status]').textContent));
    // bob is the callee of every one of them.
    await signInAs(config.partners.bob);
    assert.match(await search(config.callId), /^1 record of /);
    // Back to the operator's token for the pages that follow.
    await signInAs(config.token);
  });
  await step('settlement totals as the CLI computes them', async () => {
    const settlement = config.settlement;
    await page.goto(`${config.url}#/settlement`);
    await testid('partner').fill(settlement.partner);
    await testid('from').fill(settlement.from);
    await testid('to').fill(settlement.to);
    await testid('rounding').selectOption(settlement.rounding);
    await testid('settle').click();
    await testid('settlement-totals').waitFor();
    for (const direction of settlement.expected) {
      for (const field of ['calls', 'answered', 'billed_seconds', 'billed_minutes']) {
        const cell = await testid(`total-${direction.from}-${direction.to}-${field}`).textContent();
        assert.equal(cell, String(direction[field]), `${direction.from}→${direction.to} ${field}`);
      }
    }
    // One day, two directions: a bar of each direction's colour where it has calls.
    assert.equal(await testid('settlement-chart').getAttribute('data-slots'), '1');
    assert.equal(await testid('settlement-chart').getAttribute('data-totals'), settlement.expected.map((d) => d.calls).join(','));
    for (const [k, colour] of [BLUE, ORANGE].entries()) {
      const drawn = await barPixels('settlement-chart', colour) > 0;
      assert.equal(drawn, settlement.expected[k].calls > 0, `direction ${k}'s bar drawn iff it has calls`);
    }
    const [download] = await Promise.all([page.waitForEvent('download'), testid('settlement-csv').click()]);
    const csvPath = join(config.dir, 'settlement.csv');
    await download.saveAs(csvPath);
    const total = readFileSync(csvPath, 'utf8').split('\n').find((row) => row.startsWith(`total,${config.operator},`));
    assert.equal(total.split(',')[3], String(settlement.expected[0].calls));
    await shoot('settlement');
  });
});
