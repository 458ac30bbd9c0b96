/**
 * Charts for the experiments: vega-lite specs (Satyanarayan et al. 2017, https://vega.github.io)
 * compiled by vega-lite and rendered to SVG by vega, headless, no browser or canvas.
 *
 * vega and vega-lite 6 are ESM-only. The experiments run as CommonJS (tsx, or tsc's
 * `module: commonjs`, which would rewrite `import()` into a `require()` that cannot load ESM), so we
 * load them with a real dynamic `import()` hidden from the compiler. Jest (CommonJS, no ESM
 * loader) cannot render charts in-process: tests run the experiments as child processes.
 *
 * ```ts
 * await writeChart('out/loss.svg', lineChart({ data: rows, title: 'Loss', logY: true }));
 * ```
 * The spec builders are pure functions returning plain objects, so a test can inspect them.
 */
import * as fs from 'fs';
import * as path from 'path';

/** A vega-lite spec as plain JSON. */
export type VegaLiteSpec = Record<string, unknown>;

interface VegaModule {
  parse(spec: unknown): unknown;
  View: new (
    runtime: unknown,
    options: { renderer: string },
  ) => { toSVG(): Promise<string>; finalize(): void };
}
interface VegaLiteModule {
  compile(spec: unknown): { spec: unknown };
}

// `new Function` keeps the `import()` native: tsc and ts-jest would turn a literal one into require.
const nativeImport = new Function('specifier', 'return import(specifier)') as (
  specifier: string,
) => Promise<unknown>;

let modules: Promise<{ vega: VegaModule; vl: VegaLiteModule }> | null = null;

function loadVega(): Promise<{ vega: VegaModule; vl: VegaLiteModule }> {
  modules ??= Promise.all([nativeImport('vega'), nativeImport('vega-lite')]).then(([vega, vl]) => ({
    vega: vega as VegaModule,
    vl: vl as VegaLiteModule,
  }));
  return modules;
}

/** Compiles a vega-lite spec and renders it to an SVG string. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const { vega, vl } = await loadVega();
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders `spec` to `file` (an .svg path; parent folders are created). Returns the path. */
export async function writeChart(file: string, spec: VegaLiteSpec): Promise<string> {
  const svg = await renderSvg(spec);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, svg);
  return file;
}

/** A point of a line chart. */
export interface LinePoint {
  series: string;
  x: number;
  y: number;
}

/** Common chart options. */
export interface ChartOptions {
  title?: string;
  xTitle?: string;
  yTitle?: string;
  width?: number;
  height?: number;
}

function frame(options: ChartOptions, width = 480, height = 300): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(options.title ? { title: options.title } : {}),
    width: options.width ?? width,
    height: options.height ?? height,
    background: 'white',
  };
}

/**
 * One line per series. With `logY`, points with y ≤ 0 or non-finite y are dropped (a log axis
 * cannot show them); otherwise only non-finite points are. Series keep the order of first
 * appearance in the legend and colors. `points`: draw point marks too (a number is their area in
 * px², useful to keep isolated points visible).
 */
export function lineChart(
  data: readonly LinePoint[],
  options: ChartOptions & { logY?: boolean; points?: boolean | number } = {},
): VegaLiteSpec {
  const values = data.filter(
    (p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!options.logY || p.y > 0),
  );
  const order = [...new Set(data.map((p) => p.series))];
  return {
    ...frame(options),
    data: { values },
    mark: {
      type: 'line',
      point:
        typeof options.points === 'number' ? { size: options.points } : (options.points ?? false),
      strokeWidth: 1.5,
    },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: options.xTitle ?? 'x' },
      y: {
        field: 'y',
        type: 'quantitative',
        title: options.yTitle ?? 'y',
        scale: options.logY ? { type: 'log' } : { zero: false },
        axis: options.logY ? { format: '.0e' } : {},
      },
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        sort: order,
        // More than 10 series would reuse category10's colors.
        scale: { scheme: order.length > 10 ? 'tableau20' : 'tableau10' },
      },
    },
  };
}

/** A bar: a category's value, an optional ± error (e.g. a std) and an optional group. */
export interface Bar {
  category: string;
  value: number;
  error?: number;
  group?: string;
}

/**
 * Bars with optional ± error bars; with `group`, grouped bars side by side per category. Categories
 * and groups keep their order of first appearance.
 */
export function barChart(data: readonly Bar[], options: ChartOptions = {}): VegaLiteSpec {
  const values = data
    .filter((b) => Number.isFinite(b.value))
    .map((b) => ({
      ...b,
      group: b.group ?? '',
      low: b.value - (Number.isFinite(b.error) ? (b.error as number) : 0),
      high: b.value + (Number.isFinite(b.error) ? (b.error as number) : 0),
    }));
  const grouped = data.some((b) => b.group !== undefined);
  const order = [...new Set(data.map((b) => b.category))];
  const groups = [...new Set(data.map((b) => b.group ?? ''))];
  const x = { field: 'category', type: 'nominal', title: options.xTitle ?? null, sort: order };
  const offset = grouped ? { xOffset: { field: 'group', sort: groups } } : {};
  const color = grouped
    ? { color: { field: 'group', type: 'nominal', title: null, sort: groups } }
    : {};
  return {
    ...frame(options),
    data: { values },
    layer: [
      {
        mark: 'bar',
        encoding: {
          x,
          ...offset,
          ...color,
          y: { field: 'value', type: 'quantitative', title: options.yTitle ?? 'value' },
        },
      },
      {
        mark: { type: 'rule', color: 'black' },
        encoding: {
          x,
          ...offset,
          y: { field: 'low', type: 'quantitative' },
          y2: { field: 'high' },
        },
      },
    ],
  };
}

/** Histogram of `values` (one color per series, overlaid), `bins` bins (default 30). */
export function histogram(
  data: readonly { value: number; series?: string }[],
  options: ChartOptions & { bins?: number } = {},
): VegaLiteSpec {
  const values = data
    .filter((d) => Number.isFinite(d.value))
    .map((d) => ({ value: d.value, series: d.series ?? '' }));
  const multi = data.some((d) => d.series !== undefined);
  return {
    ...frame(options),
    data: { values },
    mark: { type: 'bar', opacity: multi ? 0.55 : 1 },
    encoding: {
      x: {
        field: 'value',
        bin: { maxbins: options.bins ?? 30 },
        title: options.xTitle ?? 'value',
      },
      y: { aggregate: 'count', title: options.yTitle ?? 'count', stack: null },
      ...(multi ? { color: { field: 'series', type: 'nominal', title: null } } : {}),
    },
  };
}

/**
 * Small multiples: the same chart once per value of `field` (e.g. one panel per configuration),
 * `columns` panels per row, panels in order of first appearance in the data. `spec` is a chart
 * from this module (its data must carry `field`). Scales are shared unless `independentY`.
 */
export function smallMultiples(
  spec: VegaLiteSpec,
  field: string,
  options: {
    columns?: number;
    title?: string;
    independentY?: boolean;
    panelWidth?: number;
    panelHeight?: number;
  } = {},
): VegaLiteSpec {
  const { $schema, title, data, background, ...inner } = spec;
  const values = (data as { values?: Record<string, unknown>[] } | undefined)?.values ?? [];
  const order = [...new Set(values.map((v) => v[field]))];
  return {
    $schema,
    title: options.title ?? title,
    background,
    data,
    columns: options.columns ?? 3,
    facet: { field, type: 'nominal', title: null, sort: order },
    spec: {
      ...inner,
      width: options.panelWidth ?? 200,
      height: options.panelHeight ?? 140,
    },
    ...(options.independentY ? { resolve: { scale: { y: 'independent' } } } : {}),
  };
}
