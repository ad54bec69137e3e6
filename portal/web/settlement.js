// The settlement page: `settlement_summary` for the period, then for each of its days (the
// chart), all at one block, so that the numbers are the ones `cdrchain settlement` prints and
// the partner's node computes.

import { barChart } from '/portal/charts.js';

/** Most days the chart asks for, one summary each. */
export const MAX_CHART_DAYS = 92;
const DAY_MS = 86_400_000;
const FIELDS = ['calls', 'answered', 'billable_seconds', 'billed_seconds', 'billed_minutes'];

/** Bars of calls per day, one colour per direction. */
function chart(days) {
  const labels = days.map((d) => d.day.slice(5));
  const series = [0, 1].map((k) => ({
    name: `${days[0].directions[k].from} → ${days[0].directions[k].to}`,
    values: days.map((d) => d.directions[k].calls),
    cls: `d${k}`,
  }));
  return barChart({ series, labels, testid: 'settlement-chart', slotName: 'day (UTC)', labelEvery: days.length <= 31 ? 1 : 7 });
}

function csv(summary, days) {
  const rows = ['day,from,to,' + FIELDS.join(',')];
  const line = (day, d) => [day, d.from, d.to, ...FIELDS.map((f) => d[f])].join(',');
  for (const day of days) for (const d of day.directions) rows.push(line(day.day, d));
  for (const d of summary.directions) rows.push(line('total', d));
  return rows.join('\n') + '\n';
}

/**
 * Renders the settlement of `me`–`partner` over `[from, to)` (YYYY-MM-DD, UTC) into `container`;
 * `rpc` is the page's JSON-RPC call, `element` its DOM helper.
 */
export async function settle({ rpc, element, container, status, me, partner, from, to, rounding }) {
  const start = Date.parse(`${from}T00:00:00Z`);
  const end = Date.parse(`${to}T00:00:00Z`);
  if (!(end > start)) throw new Error('the period is empty: "to" must be after "from"');
  const header = await rpc('chain_getHeader');
  if (!header) throw new Error('the chain has no block yet');
  const at = header.number;
  status.textContent = `computing at block #${at}…`;
  const summary = await rpc('settlement_summary', [me, partner, start, end, rounding, at]);
  const days = [];
  const count = Math.round((end - start) / DAY_MS);
  if (count <= MAX_CHART_DAYS) {
    for (let t = start; t < end; t += DAY_MS) {
      const day = await rpc('settlement_summary', [me, partner, t, Math.min(t + DAY_MS, end), rounding, at]);
      days.push({ day: new Date(t).toISOString().slice(0, 10), directions: day.directions });
    }
  }
  container.replaceChildren();
  const table = element('table', { class: 'totals', 'data-testid': 'settlement-totals' });
  table.append(element('tr', {}, element('th', {}, 'direction'), ...FIELDS.map((f) => element('th', {}, f.replace('_', ' ')))));
  for (const d of summary.directions) {
    const key = `${d.from}-${d.to}`;
    table.append(element('tr', {}, element('td', {}, `${d.from} → ${d.to}`),
      ...FIELDS.map((f) => element('td', { 'data-testid': `total-${key}-${f}` }, d[f]))));
  }
  container.append(table);
  if (days.length) container.append(element('h2', {}, 'Calls per day'), chart(days));
  else container.append(element('p', { class: 'muted' }, `no chart: more than ${MAX_CHART_DAYS} days`));
  const blob = new Blob([csv(summary, days)], { type: 'text/csv' });
  container.append(element('p', {}, element('a', {
    href: URL.createObjectURL(blob),
    download: `settlement-${me}-${partner}-${from}-${to}.csv`,
    'data-testid': 'settlement-csv',
  }, 'Download as CSV')));
  status.textContent = `${summary.calls} calls of ${summary.records} records, rounding ${summary.rounding}, at block #${summary.at.height} (${summary.at.block_hash})`;
}
