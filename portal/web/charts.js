// Bar charts drawn with uPlot (npm `uplot`, pinned in portal/package-lock.json and copied into
// /portal/vendor/ by scripts/portal-vendor.sh; index.html loads it as a classic script before
// the modules): bars on a canvas, the slots' labels under them, and a legend that shows the
// values of the slot under the cursor.

/** The bars' colours, by the series' `cls`. */
const COLOURS = { d0: '#1f4fd1', d1: '#d97706' };
/** Widest a chart is drawn, in CSS pixels; it follows its container below that. */
const MAX_WIDTH = 1180;
/** Room under the bars for the labels' axis, in CSS pixels. */
const AXIS_HEIGHT = 28;
/** Widest one bar gets, in CSS pixels (a chart of one day must not be one wide block). */
const MAX_BAR = 48;
/** Steps of the counts' axis: whole numbers only (1, 2, 5, 10, 20, 50, …). */
const COUNT_STEPS = Array.from({ length: 10 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();
const FONT = '11px system-ui, sans-serif';
const MUTED = '#6b7280';

/**
 * Bars for `labels.length` slots, one bar per series in each slot (`series`: [{name, values,
 * cls}], at most two, side by side; `cls` picks the colour), every `labelEvery`-th label under
 * its slot, `slotName` what a slot is (the legend's first column); `height` is the bars', in CSS
 * pixels. The returned element carries `data-slots` and
 * `data-totals` (each series' sum), what the chart was given.
 */
export function barChart({ series, labels, testid, slotName, labelEvery = 1, height = 200 }) {
  const box = document.createElement('div');
  box.className = 'chart';
  box.dataset.testid = testid;
  box.dataset.slots = String(labels.length);
  box.dataset.totals = series.map((s) => s.values.reduce((a, b) => a + b, 0)).join(',');
  const uPlot = globalThis.uPlot;
  if (!uPlot) {
    box.append('the chart library did not load');
    return box;
  }
  const slots = labels.map((_, i) => i);
  const align = (k) => (series.length === 1 ? 0 : k === 0 ? -1 : 1);
  const options = {
    width: MAX_WIDTH,
    height: height + AXIS_HEIGHT,
    scales: {
      x: { time: false, range: () => [-0.5, Math.max(0, labels.length - 1) + 0.5] },
      y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.05] },
    },
    axes: [
      {
        stroke: MUTED, font: FONT, size: AXIS_HEIGHT, grid: { show: false }, ticks: { show: false },
        splits: () => slots.filter((i) => i % labelEvery === 0),
        values: (_u, splits) => splits.map((i) => labels[i] ?? ''),
      },
      { stroke: MUTED, font: FONT, size: 56, incrs: COUNT_STEPS, grid: { stroke: '#eceff4' }, ticks: { show: false } },
    ],
    series: [
      { label: slotName, value: (_u, i) => (i === null ? '' : labels[Math.round(i)] ?? '') },
      ...series.map((s, k) => ({
        label: s.name,
        fill: COLOURS[s.cls] ?? MUTED,
        stroke: COLOURS[s.cls] ?? MUTED,
        width: 0,
        points: { show: false },
        paths: uPlot.paths.bars({ size: [0.9 / series.length, MAX_BAR], align: align(k) }),
      })),
    ],
    cursor: { drag: { x: false, y: false }, points: { show: false } },
  };
  const chart = new uPlot(options, [slots, ...series.map((s) => s.values)], box);
  // Drawn at MAX_WIDTH first, then fitted to the page's width (and again when it changes).
  new ResizeObserver(([entry]) => {
    const width = Math.min(MAX_WIDTH, Math.floor(entry.contentRect.width));
    if (width > 0 && width !== chart.width) chart.setSize({ width, height: chart.height });
  }).observe(box);
  return box;
}
