// The partner portal (issue #29): one page served by the node, talking to the node's own
// JSON-RPC with the user's token, loading nothing from anywhere else (the node's
// Content-Security-Policy forbids it).

import { barChart } from '/portal/charts.js';
import { showPair } from '/portal/interconnect.js';
import { renderOperator } from '/portal/operator.js';
import { reconcileFile } from '/portal/reconcile.js';
import { settle } from '/portal/settlement.js';
import { partyDigest, verifier, verifyBundle } from '/portal/verify.js';

const TOKEN_KEY = 'cdrchain-token';
const SPEC_KEY = 'cdrchain-spec';
const $ = (selector, root = document) => root.querySelector(selector);
let properties = null;

class SignInNeeded extends Error {}

/** One JSON-RPC call to the node that served the page. */
async function rpc(method, params = []) {
  const headers = { 'content-type': 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch('/', {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    throw new SignInNeeded(body.error ?? `HTTP ${response.status}`);
  }
  const answer = await response.json();
  if (answer.error) {
    if (answer.error.code === -32001) throw new SignInNeeded(answer.error.message);
    throw new Error(answer.error.message);
  }
  return answer.result;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'onclick') node.addEventListener('click', value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ''));
  return node;
}

function download(name, value) {
  downloadText(name, JSON.stringify(value, null, 2) + '\n', 'application/json');
}

function downloadText(name, text, type) {
  const blob = new Blob([text], { type });
  const link = element('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

/** The chain spec the verifier checks against: the user's file, else the node's built-in name. */
function chosenSpec() {
  const choice = localStorage.getItem(SPEC_KEY + '-choice');
  if (choice === 'file') return localStorage.getItem(SPEC_KEY) ?? '';
  if (choice !== null) return choice;
  return ['dev', 'local'].includes(properties?.chain) ? properties.chain : '';
}

function renderVerdict(container, verdict) {
  container.replaceChildren();
  if (verdict.error) {
    container.append(element('p', { class: 'error', 'data-testid': 'verdict-error' }, verdict.error));
    return;
  }
  for (const result of verdict.results) {
    const state = result.valid ? 'VALID' : result.trusted ? 'INVALID' : 'UNTRUSTED';
    const box = element('div', { class: `verdict ${state.toLowerCase()}`, 'data-testid': 'verdict-result' });
    box.append(element('h3', {}, `${state}: ${result.kind} ${result.subject ?? ''}`));
    const table = element('table', { class: 'checks' });
    for (const check of result.checks) {
      table.append(element('tr', { class: check.ok ? 'ok' : 'fail', 'data-testid': 'check' },
        element('td', {}, check.ok ? 'ok' : 'FAIL'), element('td', {}, check.name), element('td', {}, check.detail)));
    }
    box.append(table);
    for (const line of result.story ?? []) box.append(element('p', { class: 'story' }, line));
    if (result.settled) box.append(element('p', {}, `settled: ${result.settled}`));
    container.append(box);
  }
  const spec = verdict.chain ? `chain spec \`${verdict.chain}\`, genesis ${verdict.genesis_hash}` : 'no chain spec: nothing can be trusted';
  container.append(element('p', { class: 'muted' }, `checked in this browser against ${spec}`));
}

async function chainPage(root) {
  root.append($('#chain-page').content.cloneNode(true));
  $('[data-testid=chain-name]', root).textContent = properties.chain;
  const [header, finalized, consensus, anchor, rskAnchor, set, activity, evidence] = await Promise.all([
    rpc('chain_getHeader'),
    rpc('chain_getFinalizedHead'),
    rpc('consensus_status').catch((e) => ({ error: e.message })),
    rpc('checkpoint_latest').catch(() => null),
    rpc('checkpoint_anchor').catch((e) => ({ watching: false, failed: e.message })),
    rpc('authority_set').catch(() => null),
    rpc('chain_activity', [3600, 60]),
    rpc('consensus_evidence').catch((e) => ({ error: e.message })),
  ]);
  $('[data-testid=head]', root).textContent = header ? `#${header.number}` : 'no block yet';
  $('[data-testid=finalized]', root).textContent = finalized ? `${String(finalized).slice(0, 18)}…` : '—';
  $('[data-testid=consensus]', root).textContent = consensus.error ?? `height ${consensus.height}, round ${consensus.round}`;
  // What the validators signed for the contract; below, what the contract on RSK holds.
  const checkpointHeight = anchor?.height ?? anchor?.checkpoint?.height;
  $('[data-testid=anchor]', root).textContent = checkpointHeight === undefined ? 'none yet'
    : `#${checkpointHeight}, ${anchor.signatures?.length ?? 0} of ${anchor.quorum ?? '?'} signatures, ${header ? header.number - checkpointHeight : 0} blocks behind the head`;
  showRskAnchor(root, rskAnchor);
  if (activity.head !== null) {
    const minutes = activity.buckets.map((b) => new Date(b.from_ms).toISOString().slice(11, 16));
    const blocks = activity.buckets.map((b) => b.blocks);
    const cdrs = activity.buckets.map((b) => b.cdrs);
    const seconds = activity.bucket_ms / 1000;
    $('[data-testid=activity-summary]', root).textContent =
      `#${activity.head}: ${blocks.reduce((a, b) => a + b, 0)} blocks, ${cdrs.reduce((a, b) => a + b, 0)} CDRs (per ${seconds} s, UTC block time)`;
    $('#activity', root).append(
      barChart({ series: [{ name: 'blocks', values: blocks, cls: 'd0' }], labels: minutes, testid: 'blocks-chart', slotName: 'minute (UTC)', labelEvery: 10, height: 80 }),
      barChart({ series: [{ name: 'CDRs', values: cdrs, cls: 'd1' }], labels: minutes, testid: 'cdrs-chart', slotName: 'minute (UTC)', labelEvery: 10, height: 80 }));
  }
  const evidenceBox = $('[data-testid=evidence]', root);
  if (evidence.error) evidenceBox.append(element('p', { class: 'error' }, evidence.error));
  else if (evidence.length === 0) evidenceBox.append(element('p', {}, 'none: no validator signed two conflicting messages'));
  else {
    evidenceBox.append(element('table', { class: 'list' },
      element('tr', {}, ...['validator', 'height', 'round', 'step', ''].map((h) => element('th', {}, h))),
      ...evidence.map((e, i) => element('tr', {}, element('td', {}, e.offender), element('td', {}, `#${e.height}`),
        element('td', {}, e.round), element('td', {}, e.step),
        element('td', {}, element('button', { type: 'button', onclick: () => download(`evidence-${i}.json`, e.evidence) }, 'Download'))))));
  }
  const liveness = new Map((activity.validators ?? []).map((v) => [v.operator, v]));
  const body = $('[data-testid=validators] tbody', root);
  for (const member of set?.members ?? set?.authorities ?? []) {
    const id = member.operator ?? member.id;
    const seen = liveness.get(id);
    body.append(element('tr', { 'data-testid': 'validator' }, element('td', {}, id),
      element('td', {}, String(member.ed25519 ?? '').slice(0, 18) + '…'),
      element('td', { 'data-testid': 'last-signed' }, seen?.last_signed ? `#${seen.last_signed}` : 'not in the hour'),
      element('td', {}, seen ? seen.signed : 0)));
  }
}

/** The RSK anchor as the node last read it (`checkpoint_anchor`): height, lag, when, why not. */
function showRskAnchor(root, a) {
  const value = $('[data-testid=rsk-anchor]', root);
  const detail = $('[data-testid=rsk-anchor-detail]', root);
  if (!a.watching) {
    value.textContent = 'not read by this node';
    detail.textContent = a.failed ?? 'its operator starts it with --rsk-rpc to show the anchor here; the relayer reports it too';
    return;
  }
  if (a.anchored_height === null) {
    value.textContent = 'not read yet';
  } else {
    const ago = Math.max(0, Math.round((Date.now() - a.checked_at_ms) / 1000));
    value.textContent = a.anchored_height === 0 ? 'nothing anchored yet'
      : `#${a.anchored_height}, ${a.lag_blocks} blocks behind the head`;
    detail.textContent = `${a.lag_checkpoints} checkpoint(s) not yet on RSK; contract ${a.contract} on chain ${a.rsk_chain_id}, RSK block ${a.rsk_block}, read ${ago} s ago`;
    if (a.lag_checkpoints > 1) value.classList.add('error');
  }
  if (a.error) detail.append(element('p', { class: 'error', 'data-testid': 'rsk-anchor-error' }, `last reading failed: ${a.error.message}`));
}

function recordRow(record, note = '') {
  const id = record.id ?? `${record.recorder}:${record.sequence}`;
  const fields = ['call_id', 'caller_operator', 'callee_operator', 'start_ms', 'answer_ms', 'end_ms', 'disposition'];
  const table = element('table', { class: 'record', 'data-testid': 'record' });
  table.append(element('tr', {}, element('th', {}, 'id'), element('td', { 'data-testid': 'record-id' }, id)));
  for (const field of fields) {
    if (record[field] !== undefined && record[field] !== null) table.append(element('tr', {}, element('th', {}, field), element('td', {}, record[field])));
  }
  const verdict = element('div', { 'data-testid': 'record-verdict' });
  const actions = element('div', { class: 'row' },
    element('button', { type: 'button', 'data-testid': 'download-proof', onclick: async () => download(`proof-${id.replace(':', '-')}.json`, await rpc('cdr_proof', [id])) }, 'Download proof bundle'),
    element('button', { type: 'button', 'data-testid': 'verify-proof', onclick: async () => renderVerdict(verdict, await verifyBundle(JSON.stringify(await rpc('cdr_proof', [id])), chosenSpec())) }, 'Verify it in this browser'));
  return element('div', { class: 'card wide' }, ...(note ? [element('p', { class: 'muted', 'data-testid': 'record-note' }, note)] : []), table, actions, verdict);
}

/** The chain's public dev secret (cli/src/node.rs): prefilled on a dev chain only. */
const DEV_CONSORTIUM_SECRET = 'cdrchain dev consortium secret -- INSECURE, public';

/** What a query is, when the user chose "any". */
function kindOf(query, chosen) {
  if (chosen !== 'auto') return chosen;
  if (/^[a-z0-9][a-z0-9._-]*:\d+$/i.test(query)) return 'id';
  if (/^(\+|tel:|sips?:)/i.test(query) || /^[\d\s().-]{3,}$/.test(query)) return 'number';
  return 'call';
}

/** The records of a party, newest first, a page at a time ("More" asks the next). */
async function searchNumber(root, query, results, status) {
  const hashed = await partyDigest({ secret: $('#secret', root).value, region: $('#region', root).value, party: query });
  if (hashed.error) throw new Error(`the number: ${hashed.error}`);
  let shown = 0;
  const more = async (cursor) => {
    const page = await rpc('cdr_byParty', [hashed.digest, cursor, 50]);
    for (const record of page.cdrs) {
      const role = [record.caller === hashed.digest && 'caller', record.callee === hashed.digest && 'callee'].filter(Boolean).join(' and ');
      results.append(recordRow(record, `${hashed.canonical} is the ${role}`));
    }
    shown += page.cdrs.length;
    const behind = page.indexed_through < page.head ? ` (the search index has reached block #${page.indexed_through} of #${page.head}: later calls are not found yet)` : '';
    status.textContent = `${shown} record${shown === 1 ? '' : 's'} of ${hashed.canonical} (${hashed.kind}), newest first${page.next_cursor ? ', more below' : ''}${behind}`;
    if (page.next_cursor) {
      const button = element('button', { type: 'button', 'data-testid': 'more', onclick: () => { button.remove(); more(page.next_cursor).catch((e) => { status.textContent = e.message; }); } }, 'More');
      results.append(button);
    }
  };
  await more(null);
}

async function search(root, query, chosen) {
  const status = $('#search-status', root);
  const results = $('#results', root);
  results.replaceChildren();
  status.textContent = 'searching…';
  try {
    const kind = kindOf(query, chosen);
    if (kind === 'number') return await searchNumber(root, query, results, status);
    let records;
    if (kind === 'id') {
      const record = await rpc('cdr_get', [query]);
      records = record ? [record] : [];
      if (!record) {
        results.append(element('button', { type: 'button', 'data-testid': 'download-absence', onclick: async () => download(`absence-${query.replace(':', '-')}.json`, await rpc('cdr_absenceProof', [query])) }, `Download the proof that ${query} is not recorded`));
      }
    } else {
      records = await rpc('cdr_byCallId', [query]);
    }
    status.textContent = `${records.length} record${records.length === 1 ? '' : 's'} of ${query}`;
    for (const record of records) results.append(recordRow(record));
  } catch (error) {
    status.textContent = error.message;
  }
}

function recordsPage(root) {
  root.append($('#records-page').content.cloneNode(true));
  if (properties.chain === 'dev') $('#secret', root).value = DEV_CONSORTIUM_SECRET;
  const options = () => {
    $('#number-options', root).hidden = kindOf($('#query', root).value.trim(), $('#search-kind', root).value) !== 'number';
  };
  $('#query', root).addEventListener('input', options);
  $('#search-kind', root).addEventListener('change', options);
  $('#search-form', root).addEventListener('submit', (event) => {
    event.preventDefault();
    search(root, $('#query', root).value.trim(), $('#search-kind', root).value);
  });
}

function settlementPage(root) {
  root.append($('#settlement-page').content.cloneNode(true));
  const today = new Date().toISOString().slice(0, 10);
  $('#to', root).value = today;
  $('#from', root).value = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
  $('#settlement-form', root).addEventListener('submit', async (event) => {
    event.preventDefault();
    const status = $('#settlement-status', root);
    try {
      await settle({
        rpc, element, status,
        container: $('#settlement-result', root),
        me: properties.operator,
        partner: $('#partner', root).value.trim(),
        from: $('#from', root).value,
        to: $('#to', root).value,
        rounding: $('#rounding', root).value,
      });
    } catch (error) {
      status.textContent = error.message;
    }
  });
}

function interconnectPage(root) {
  root.append($('#interconnect-page').content.cloneNode(true));
  $('#interconnect-form', root).addEventListener('submit', async (event) => {
    event.preventDefault();
    const status = $('#ic-status', root);
    try {
      await showPair({
        rpc, element, download, renderVerdict, verifyBundle, status,
        spec: chosenSpec,
        container: $('#ic-result', root),
        me: properties.operator,
        partner: $('#ic-partner', root).value.trim(),
      });
    } catch (error) {
      status.textContent = error.message;
    }
  });
}

async function verifyPage(root) {
  root.append($('#verify-page').content.cloneNode(true));
  const choice = $('#spec-choice', root);
  const specFile = $('#spec-file', root);
  choice.value = localStorage.getItem(SPEC_KEY + '-choice') ?? chosenSpec();
  specFile.hidden = choice.value !== 'file';
  choice.addEventListener('change', () => {
    localStorage.setItem(SPEC_KEY + '-choice', choice.value);
    specFile.hidden = choice.value !== 'file';
  });
  specFile.addEventListener('change', async () => localStorage.setItem(SPEC_KEY, await specFile.files[0].text()));
  $('#bundle-file', root).addEventListener('change', async (event) => {
    const file = event.target.files[0];
    if (file) renderVerdict($('#verdict', root), await verifyBundle(await file.text(), chosenSpec()));
  });
  $('#verifier-digest', root).textContent = (await verifier()).sha256;
}

/** The reconciliation page: a dropped or chosen file is reconciled at once. */
function reconcilePage(root) {
  root.append($('#reconcile-page').content.cloneNode(true));
  if (properties.chain === 'dev') $('#rec-secret', root).value = DEV_CONSORTIUM_SECRET;
  const status = $('#rec-status', root);
  const run = async (file) => {
    const partner = $('#rec-partner', root).value.trim();
    if (!partner) {
      status.textContent = 'name the partner first';
      return;
    }
    try {
      await reconcileFile({ rpc, element, download: downloadText, container: $('#rec-result', root), status }, file, {
        me: properties.operator,
        partner,
        secret: $('#rec-secret', root).value,
        region: $('#rec-region', root).value,
        format: $('#rec-format', root).value,
        timezone: $('#rec-timezone', root).value,
        system_id: $('#rec-system', root).value,
        tolerance_s: Number($('#rec-tolerance', root).value || 2),
      });
    } catch (error) {
      // Called from an event listener, not from `route`: sign in again here.
      if (error instanceof SignInNeeded) return showSignIn(error.message);
      status.textContent = error.message;
    }
  };
  $('#rec-file', root).addEventListener('change', (event) => {
    if (event.target.files[0]) run(event.target.files[0]);
  });
  const drop = $('#rec-drop', root);
  drop.addEventListener('dragover', (event) => event.preventDefault());
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    if (event.dataTransfer.files[0]) run(event.dataTransfer.files[0]);
  });
}

/** The operator view: for the node's own operator's token (a partner's may not read it). */
async function operatorPage(root) {
  root.append($('#operator-page').content.cloneNode(true));
  $('[data-testid=op-operator]', root).textContent = properties.operator;
  let stats;
  try {
    stats = await rpc('system_ingestStats');
  } catch (error) {
    if (!(error instanceof SignInNeeded) || !sessionStorage.getItem(TOKEN_KEY)) throw error;
    $('#op-status', root).textContent = `This view is for the node's own operator: ${error.message}`;
    return;
  }
  renderOperator({ element, container: $('#op-result', root) }, stats);
}

const PAGES = {
  reconcile: reconcilePage,
  operator: operatorPage,
  chain: chainPage, records: recordsPage, settlement: settlementPage, interconnect: interconnectPage, verify: verifyPage,
};

async function route() {
  const name = (location.hash.match(/^#\/(\w+)/) ?? [])[1] ?? 'chain';
  const page = PAGES[name] ?? chainPage;
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.page === name);
  const root = $('#page');
  root.replaceChildren();
  try {
    await page(root);
  } catch (error) {
    if (error instanceof SignInNeeded) return showSignIn(error.message);
    root.append(element('p', { class: 'error' }, error.message));
  }
}

function showSignIn(reason) {
  $('#page').replaceChildren();
  $('#sign-in').hidden = false;
  $('#sign-in-error').textContent = reason ?? '';
}

async function start() {
  try {
    properties = await rpc('system_properties');
  } catch (error) {
    if (error instanceof SignInNeeded) return showSignIn(sessionStorage.getItem(TOKEN_KEY) ? error.message : '');
    throw error;
  }
  $('#sign-in').hidden = true;
  $('#who').textContent = `${properties.operator} on ${properties.chain}`;
  $('#sign-out').hidden = !sessionStorage.getItem(TOKEN_KEY);
  await route();
}

$('#sign-in-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
  start();
});
$('#sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});
window.addEventListener('hashchange', () => properties && route());
start();
