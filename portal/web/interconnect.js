// The pair's agreements, statements and disputes (issue #28's records), read through the node's
// JSON-RPC; a dispute's bundle is downloaded and verified in this browser.

function table(element, testid, headings, rows) {
  const node = element('table', { class: 'list', 'data-testid': testid });
  node.append(element('tr', {}, ...headings.map((h) => element('th', {}, h))));
  for (const row of rows) node.append(row);
  return node;
}

const short = (id) => (id ? `${id.slice(0, 10)}…` : '—');
/** A period's bound as UTC time (a statement's period is the agreement's local days). */
const utc = (ms) => new Date(ms).toISOString().replace(':00.000Z', 'Z');
const height = (h) => (h === null || h === undefined ? '—' : `#${h}`);

/**
 * Renders `me`–`partner`'s records into `container`. `rpc`, `element`, `download`,
 * `renderVerdict`, `verifyBundle` and `spec` are the page's.
 */
export async function showPair({ rpc, element, download, renderVerdict, verifyBundle, spec, container, status, me, partner }) {
  const [agreements, statements, disputes] = await Promise.all([
    rpc('agreement_list', [me, partner]),
    rpc('statement_list', [me, partner]),
    rpc('dispute_list', [me, partner]),
  ]);
  container.replaceChildren();
  const inForce = agreements.in_force ? `version ${agreements.in_force.version} in force` : 'no agreement in force';
  status.textContent = `\`${agreements.a}\`–\`${agreements.b}\`: ${inForce}; ${statements.statements.length} statements, ${disputes.disputes.length} disputes`;
  container.append(element('h2', {}, 'Agreements'), table(element, 'agreements', ['id', 'version', 'proposed by', 'proposed', 'accepted'],
    agreements.agreements.map((a) => element('tr', {}, element('td', { title: a.id }, short(a.id)), element('td', {}, a.version),
      element('td', {}, a.a), element('td', {}, height(a.proposed_at)), element('td', {}, height(a.accepted_at))))));
  const final = new Set(statements.final.map((f) => f.statement));
  container.append(element('h2', {}, 'Statements'), table(element, 'statements', ['id', 'period', 'proposed by', 'proposed', 'state'],
    statements.statements.map((s) => element('tr', {}, element('td', { title: s.id }, short(s.id)),
      element('td', {}, `${utc(s.from_ms)} – ${utc(s.to_ms)}`),
      element('td', {}, s.a), element('td', {}, height(s.proposed_at)),
      element('td', {}, final.has(s.id) ? 'final' : s.dispute ? 'disputed' : 'awaiting signature')))));
  const verdict = element('div', { 'data-testid': 'dispute-verdict' });
  container.append(element('h2', {}, 'Disputes'), table(element, 'disputes', ['id', 'statement', 'opened by', 'steps', 'state', ''],
    disputes.disputes.map((d) => element('tr', { 'data-testid': 'dispute' }, element('td', { title: d.id }, short(d.id)),
      element('td', { title: d.statement }, short(d.statement)), element('td', {}, d.opener), element('td', {}, d.steps_count),
      element('td', {}, d.closed_at ? `closed at #${d.closed_at}` : 'open'),
      element('td', {},
        element('button', { type: 'button', 'data-testid': 'download-dispute', onclick: async () => download(`dispute-${d.id.slice(2, 10)}.json`, await rpc('dispute_bundle', [d.id])) }, 'Download bundle'),
        ' ',
        element('button', { type: 'button', 'data-testid': 'verify-dispute', onclick: async () => renderVerdict(verdict, await verifyBundle(JSON.stringify(await rpc('dispute_bundle', [d.id])), spec())) }, 'Verify it in this browser'))))),
  verdict);
}
