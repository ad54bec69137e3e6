// Bar charts drawn as SVG in the page (no chart library is loaded from anywhere).

const svgNs = 'http://www.w3.org/2000/svg';
/** Widest a slot (one label's bars) gets, in SVG units. */
const MAX_SLOT = 48;
const WIDTH = 1100;

function svg(tag, attributes) {
  const node = document.createElementNS(svgNs, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

/**
 * Bars for `labels.length` slots, one bar per series in each slot (`series`: [{name, values,
 * cls}], `cls` picks the colour), a legend, and every `labelEvery`-th label under its slot;
 * `height` is the bars' in SVG units.
 */
export function barChart({ series, labels, testid, labelEvery = 1, height: HEIGHT = 200 }) {
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const slot = Math.min(MAX_SLOT, WIDTH / Math.max(1, labels.length));
  const bar = (slot * 0.9) / series.length;
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT + 20}`, width: '100%', 'data-testid': testid, role: 'img' });
  labels.forEach((label, i) => {
    series.forEach((s, k) => {
      const h = (s.values[i] / max) * HEIGHT;
      const rect = svg('rect', { x: i * slot + slot * 0.05 + k * bar, y: HEIGHT - h, width: bar * 0.9, height: h, class: `bar ${s.cls}` });
      const title = svg('title', {});
      title.textContent = `${label} ${s.name}: ${s.values[i]}`;
      rect.append(title);
      root.append(rect);
    });
    if (i % labelEvery === 0) {
      const text = svg('text', { x: i * slot + slot / 2, y: HEIGHT + 15, 'text-anchor': 'middle', class: 'axis' });
      text.textContent = label;
      root.append(text);
    }
  });
  series.forEach((s, k) => {
    const x = WIDTH - 260;
    root.append(svg('rect', { x, y: 4 + k * 18, width: 12, height: 12, class: `swatch ${s.cls}` }));
    const text = svg('text', { x: x + 18, y: 14 + k * 18, class: 'axis' });
    text.textContent = s.name;
    root.append(text);
  });
  return root;
}
