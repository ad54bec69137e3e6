// The operator view: what this node's ingest took and refused since it started, per source
// (`system_ingestStats`), its queue and admission refusals, its declared sequence gaps.
// For the node's own operator: a partner's token may not read it.

function table(element, testid, headers, rows) {
  return element('table', { class: 'list', 'data-testid': testid },
    element('tr', {}, ...headers.map((h) => element('th', {}, h))),
    ...rows.map(({ cells, id }) => element('tr', id ? { 'data-testid': id } : {}, ...cells.map((c) => element('td', {}, c ?? '')))));
}

const sum = (values) => values.reduce((a, b) => a + b, 0);

/** Renders `system_ingestStats` into `container`. */
export function renderOperator({ element, container }, stats) {
  const refusals = sum(Object.values(stats.admission_refusals));
  const card = (testid, label, value) => element('div', { class: 'card' }, element('div', { class: 'label' }, label),
    element('div', { class: 'value', 'data-testid': testid }, String(value)));
  container.append(element('div', { class: 'cards' },
    card('op-queue', 'CDRs waiting for the chain', stats.queue_depth),
    card('op-rate', 'commit rate (admission\'s estimate)', stats.commit_rate_per_s == null ? 'not yet' : `${Math.round(stats.commit_rate_per_s)}/s`),
    card('op-admission', 'submissions refused by admission', refusals)));
  if (stats.stuck) {
    container.append(element('p', { class: 'error', 'data-testid': 'op-stuck' }, `Stuck: ${JSON.stringify(stats.stuck)}`));
  }
  const sources = Object.entries(stats.sources);
  container.append(element('h2', {}, 'Ingest per source'), sources.length === 0
    ? element('p', { class: 'muted' }, 'nothing submitted since the node started')
    : table(element, 'op-sources', ['source (system_id)', 'accepted', 'duplicates', 'refused submissions', 'parties as written'],
      sources.map(([source, c]) => ({
        id: `op-source-${source}`,
        cells: [source, c.accepted, c.duplicates,
          Object.entries(c.refused).map(([reason, n]) => `${n} × ${reason}`).join('; ') || '0', c.as_written],
      }))));
  const reasons = Object.entries(stats.admission_refusals);
  container.append(element('h2', {}, 'Admission refusals'), reasons.length === 0
    ? element('p', { class: 'muted', 'data-testid': 'op-admission-none' }, 'none: every submission was taken or refused for its content')
    : table(element, 'op-admission-reasons', ['reason', 'submissions'], reasons.map(([reason, n]) => ({ cells: [reason, n] }))));
  const gaps = stats.gaps ?? [];
  container.append(element('h2', {}, 'Sequence gaps'), gaps.length === 0
    ? element('p', { 'data-testid': 'op-gap' }, `none declared by ${stats.operator}`)
    : table(element, 'op-gaps', ['sequences', 'CDRs', 'declared at', 'reason'],
      gaps.map((g) => ({ id: `op-gap-${g.from}`, cells: [`${stats.operator}:${g.from}–${g.to}`, g.cdrs, `#${g.declared_at}`, g.reason] }))));
  if (stats.gaps_cut_off) container.append(element('p', { class: 'muted' }, `the newest ${gaps.length} shown`));
}
