// Reconciliation by upload: the user's own CDR export is read, and its numbers hashed, in this
// browser by cdrchain's own code (the verifier module: `export`, `reconcile`); only the pair and
// the period go to the node, which answers the chain's records of the pair (`cdr_query`). The
// file never leaves the page.

import { exportSummary, reconcileExport } from '/portal/verify.js';

/** The node's largest `cdr_query` page. */
const QUERY_PAGE_CDRS = 10_000;

const when = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');

/** Every chain record of `me`–`partner` that started in `[from, to)`, page by page. */
async function chainRecords(rpc, me, partner, from, to, status) {
  const records = [];
  let cursor = null;
  do {
    const page = await rpc('cdr_query', [me, partner, from, to, cursor, QUERY_PAGE_CDRS]);
    records.push(...page.cdrs);
    cursor = page.next_cursor;
    status.textContent = `fetched ${records.length} chain records…`;
  } while (cursor);
  return records;
}

function table(element, testid, headers, rows) {
  return element('table', { class: 'list', 'data-testid': testid },
    element('tr', {}, ...headers.map((h) => element('th', {}, h))),
    ...rows.map((cells) => element('tr', {}, ...cells.map((c) => element('td', {}, c ?? '')))));
}

function render({ element, container, download }, result, fileName) {
  const { report, csv } = result;
  const count = (testid, label, n) => element('div', { class: 'card' }, element('div', { class: 'label' }, label),
    element('div', { class: 'value', 'data-testid': testid }, String(n)));
  container.append(element('div', { class: 'cards' },
    count('rec-matched', 'matched', report.matched),
    count('rec-mismatched', 'mismatched', report.mismatched.length),
    count('rec-missing-on-chain', 'missing on the chain', report.missing_on_chain.length),
    count('rec-missing-in-file', 'missing in your file', report.missing_in_file.length)));
  const base = fileName.replace(/\.[^.]*$/, '');
  container.append(element('div', { class: 'row' },
    element('button', { type: 'button', 'data-testid': 'rec-csv', onclick: () => download(`reconciliation-${base}.csv`, csv, 'text/csv') }, 'Download the differences (CSV)'),
    element('button', { type: 'button', 'data-testid': 'rec-json', onclick: () => download(`reconciliation-${base}.json`, JSON.stringify(report, null, 2) + '\n', 'application/json') }, 'Download the report (JSON)')));
  container.append(element('h2', {}, 'Totals per direction'), table(element, 'rec-totals',
    ['direction', 'calls: yours', 'chain', 'answered: yours', 'chain', 'billable s: yours', 'chain'],
    report.totals.map((t) => [`${t.from} → ${t.to}`, t.mine.calls, t.chain.calls, t.mine.answered, t.chain.answered,
      t.mine.billable_seconds, t.chain.billable_seconds])));
  if (report.mismatched.length) {
    container.append(element('h2', {}, 'Calls that differ'), table(element, 'rec-mismatched-rows',
      ['your line', 'chain record', 'call id', 'field', 'yours', 'chain'],
      report.mismatched.flatMap((m) => m.differences.map((d) => [m.line, m.id, m.call_id, d.field, d.mine, d.chain]))));
  }
  if (report.missing_on_chain.length) {
    container.append(element('h2', {}, 'In your file, not on the chain'), table(element, 'rec-missing-on-chain-rows',
      ['your line', 'call id', 'start', 'direction'],
      report.missing_on_chain.map((u) => [u.line, u.call_id, when(u.start_ms), `${u.from} → ${u.to}`])));
  }
  if (report.missing_in_file.length) {
    container.append(element('h2', {}, 'On the chain, not in your file'), table(element, 'rec-missing-in-file-rows',
      ['chain record', 'call id', 'start', 'direction'],
      report.missing_in_file.map((u) => [u.id, u.call_id, when(u.start_ms), `${u.from} → ${u.to}`])));
  }
}

/**
 * Reconciles `file` (a File the user chose or dropped) as `options` say (`me`, `partner`,
 * `secret`, `region`, `format`, `timezone`, `system_id`, `tolerance_s`) into `container`.
 */
export async function reconcileFile({ rpc, element, download, container, status }, file, options) {
  container.replaceChildren();
  status.textContent = `reading ${file.name} in this browser…`;
  const bytes = new Uint8Array(await file.arrayBuffer());
  const request = JSON.stringify({ ...options, file_name: file.name });
  const summary = await exportSummary(request, bytes);
  if (summary.error) throw new Error(summary.error);
  const chain = await chainRecords(rpc, options.me, options.partner, summary.fetch_from, summary.fetch_to, status);
  const result = await reconcileExport(request, bytes, JSON.stringify(chain));
  if (result.error) throw new Error(result.error);
  const { report } = result;
  const differ = report.mismatched.length + report.missing_on_chain.length + report.missing_in_file.length;
  status.textContent = `${file.name}: ${summary.records} records read here (${summary.unreadable.length} unreadable), ` +
    `${chain.length} chain records between ${options.me} and ${options.partner}, calls started in ` +
    `[${when(summary.from)}, ${when(summary.to)}): ${differ === 0 ? 'no differences' : `${differ} calls differ`}`;
  if (result.parties_differ_everywhere) {
    container.append(element('p', { class: 'error' }, 'Every matched call differs in both parties: is the consortium secret (and the region) the chain\'s?'));
  }
  if (summary.unreadable.length) {
    container.append(element('details', {}, element('summary', {}, `${summary.unreadable.length} records of the file did not read`),
      element('pre', {}, summary.unreadable.join('\n'))));
  }
  render({ element, container, download }, result, file.name);
}
