/**
 * The page's view: the loss chart, tables, digit thumbnails and the error box. Plain SVG for the
 * chart: two polylines redrawn per step cost nothing, where vega-lite (the experiments' charts)
 * would add ~1 MB to the bundle and re-run its whole compile per update.
 */

/** The element with `id`, typed; throws when the page lacks it (a broken build). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`The demo page has no #${id}: rebuild with npm run demo:build.`);
  return element as T;
}

/** Shows `message` in the error box at the top (never a blank page); `null` hides it. */
export function showError(message: string | null): void {
  const box = byId('error');
  box.hidden = message === null;
  box.textContent = message ?? '';
  if (message !== null) box.scrollIntoView({ block: 'nearest' });
}

export function setStatus(text: string, fraction?: number): void {
  byId('status').textContent = text;
  if (fraction !== undefined) byId<HTMLProgressElement>('progress').value = fraction;
}

/** A loss curve: (step, loss) points. */
export interface Series {
  label: string;
  color: string;
  points: [number, number][];
}

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, String(v));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Draws the series into #chart (linear axes, loss from 0 to the largest value seen). */
export function drawChart(series: Series[], totalSteps: number): void {
  const width = 640;
  const height = 260;
  const left = 48;
  const bottom = 32;
  const top = 24;
  const right = 150;
  const maxLoss = Math.max(0.5, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (step: number) => left + ((width - left - right) * step) / Math.max(1, totalSteps);
  const y = (loss: number) => top + (height - top - bottom) * (1 - loss / maxLoss);
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
  root.append(
    svg('line', { x1: left, y1: y(0), x2: x(totalSteps), y2: y(0), stroke: '#888' }),
    svg('line', { x1: left, y1: y(0), x2: left, y2: y(maxLoss), stroke: '#888' }),
    svg('text', { x: x(totalSteps) / 2, y: height - 6, 'font-size': 12 }, 'training step'),
    svg('text', { x: 4, y: 14, 'font-size': 12 }, 'loss'),
  );
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    const value = tick * maxLoss;
    root.append(
      svg(
        'text',
        { x: left - 6, y: y(value) + 4, 'font-size': 11, 'text-anchor': 'end' },
        value.toFixed(2),
      ),
    );
    const step = Math.round(tick * totalSteps);
    root.append(
      svg(
        'text',
        { x: x(step), y: y(0) + 14, 'font-size': 11, 'text-anchor': 'middle' },
        String(step),
      ),
    );
  }
  series.forEach((s, i) => {
    root.append(
      svg('polyline', {
        'data-series': s.label,
        'data-points': s.points.length,
        points: s.points
          .map(([step, loss]) => `${x(step).toFixed(1)},${y(loss).toFixed(1)}`)
          .join(' '),
        fill: 'none',
        stroke: s.color,
        'stroke-width': 1.6,
      }),
      svg('rect', {
        x: width - right + 12,
        y: top + 8 + 18 * i,
        width: 14,
        height: 3,
        fill: s.color,
      }),
      svg('text', { x: width - right + 32, y: top + 13 + 18 * i, 'font-size': 12 }, s.label),
    );
  });
  byId('chart').replaceChildren(root);
}

/** Replaces the contents of `#id` with a table (`head` row, then `rows`). */
export function showTable(
  id: string,
  head: string[],
  rows: (string | number)[][],
  caption?: string,
): void {
  const table = document.createElement('table');
  if (caption) table.createCaption().textContent = caption;
  const headRow = table.createTHead().insertRow();
  for (const h of head)
    headRow.append(Object.assign(document.createElement('th'), { textContent: h }));
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const cell of row) tr.insertCell().textContent = String(cell);
  }
  byId(id).replaceChildren(table);
}

/** A 28×28 digit as a canvas (pixels in [0, 1], row-major). */
export function digitCanvas(pixels: Float32Array): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = 28;
  canvas.height = 28;
  const context = canvas.getContext('2d')!;
  const image = context.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = 255 - Math.round(255 * pixels[i]);
    image.data.set([v, v, v, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/** An `<a download>` for `data` under `name`. */
export function downloadLink(name: string, data: BlobPart, type: string): HTMLAnchorElement {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([data], { type }));
  link.download = name;
  link.textContent = `Download ${name}`;
  return link;
}
