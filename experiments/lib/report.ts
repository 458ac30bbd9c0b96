/**
 * Reports for the experiments: a console table, number formatting, and the output folder
 * `<out>/report.md`, `<out>/results.json` and charts `<out>/*.svg`.
 *
 * JSON cannot hold NaN or ±Infinity (`JSON.stringify` would write null, losing the fact that a run
 * diverged), so {@link writeResults} writes non-finite numbers as the strings "NaN", "Infinity" and
 * "-Infinity"; {@link readResults} turns them back into numbers.
 */
import * as fs from 'fs';
import * as path from 'path';
import { VegaLiteSpec, writeChart } from './charts';

/**
 * A number for people: 3 significant digits, scientific notation outside [1e-3, 1e5), "NaN",
 * "∞", "-∞". `fmt(0.000123)` = "1.23e-4", `fmt(12.345)` = "12.3", `fmt(0)` = "0".
 */
export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined) return '–';
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a < 1e-3 || a >= 1e5) {
    const [mantissa, exponent] = x.toExponential(digits - 1).split('e');
    return `${mantissa}e${Number(exponent)}`;
  }
  return String(Number(x.toPrecision(digits)));
}

/** A fraction as a percentage: `pct(0.1234)` = "12.3%". */
export function pct(x: number | null | undefined, decimals = 1): string {
  if (x === null || x === undefined) return '–';
  if (!Number.isFinite(x)) return fmt(x);
  return `${(x * 100).toFixed(decimals)}%`;
}

/** Cell alignment: numbers-looking cells default to right, text to left. */
export type Align = 'left' | 'right';

const NUMERIC = /^[-+]?(\d|∞|NaN|–)/;

function cellText(value: unknown): string {
  if (typeof value === 'number') return fmt(value);
  if (value === null || value === undefined) return '–';
  return String(value);
}

/**
 * A plain-text table with aligned columns: header, a dashed rule, rows. Cells are numbers
 * (formatted with {@link fmt}) or strings. A column is right-aligned when all its cells look
 * numeric, unless `align` says otherwise.
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly unknown[])[],
  align?: readonly Align[],
): string {
  const text = rows.map((row) => header.map((_, c) => cellText(row[c])));
  const widths = header.map((h, c) => Math.max(h.length, ...text.map((row) => row[c].length)));
  const aligns = header.map(
    (_, c) => align?.[c] ?? (text.every((row) => NUMERIC.test(row[c])) ? 'right' : 'left'),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (aligns[c] === 'right' ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...text.map(line)].join('\n');
}

/** The same table in GitHub markdown (numbers formatted with {@link fmt}). */
export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly unknown[])[],
): string {
  const escape = (s: string) => s.replace(/\|/g, '\\|');
  const text = rows.map((row) => header.map((_, c) => escape(cellText(row[c]))));
  const numeric = header.map((_, c) => text.every((row) => NUMERIC.test(row[c])));
  return [
    `| ${header.map(escape).join(' | ')} |`,
    `| ${numeric.map((n) => (n ? '---:' : '---')).join(' | ')} |`,
    ...text.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}

/** JSON text in which NaN / ±Infinity are kept as the strings "NaN", "Infinity", "-Infinity". */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v),
    2,
  );
}

/** Parses {@link toJson} output, restoring "NaN" / "Infinity" / "-Infinity" to numbers. */
export function fromJson<T = unknown>(text: string): T {
  return JSON.parse(text, (_key, v) =>
    v === 'NaN' || v === 'Infinity' || v === '-Infinity' ? Number(v) : v,
  ) as T;
}

/** Writes `<out>/results.json` (see the module doc about non-finite numbers). Returns the path. */
export function writeResults(out: string, results: unknown): string {
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, 'results.json');
  fs.writeFileSync(file, toJson(results) + '\n');
  return file;
}

/** Reads `<out>/results.json` written by {@link writeResults}. */
export function readResults<T = unknown>(out: string): T {
  return fromJson<T>(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
}

/** Writes `<out>/report.md`. Returns the path. */
export function writeMarkdown(out: string, markdown: string): string {
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, 'report.md');
  fs.writeFileSync(file, markdown.endsWith('\n') ? markdown : markdown + '\n');
  return file;
}

/** Renders each chart to `<out>/<name>.svg`. Returns the paths, in order. */
export async function writeCharts(
  out: string,
  charts: Record<string, VegaLiteSpec>,
): Promise<string[]> {
  const files: string[] = [];
  for (const [name, spec] of Object.entries(charts)) {
    files.push(await writeChart(path.join(out, `${name}.svg`), spec));
  }
  return files;
}

/** Everything of a report at once: results.json, the charts, then report.md. */
export async function writeReport(
  out: string,
  parts: { markdown: string; results: unknown; charts?: Record<string, VegaLiteSpec> },
): Promise<{ markdown: string; results: string; charts: string[] }> {
  const results = writeResults(out, parts.results);
  const charts = await writeCharts(out, parts.charts ?? {});
  const markdown = writeMarkdown(out, parts.markdown);
  return { markdown, results, charts };
}

/** How a pooled experiment ran, for the first line of its report. */
export interface RunProvenance {
  quick: boolean;
  backend: string;
  /** Why that backend (e.g. 'asked for'). */
  backendReason: string;
  /** `tf.version.tfjs` (passed in: this module loads without tfjs). */
  tfjs: string;
  seconds: number;
}

/**
 * The first line of an experiment's report.md: "Generated by `npm run experiment:<name>` [with
 * `--quick`] on <date> (backend <name>: <why>; tfjs <version>) in <n> s."
 */
export function generatedLine(experiment: string, run: RunProvenance): string {
  return (
    `Generated by \`npm run experiment:${experiment}\`${run.quick ? ' with `--quick`' : ''} on ` +
    `${new Date().toISOString()} (backend ${run.backend}: ${run.backendReason}; tfjs ${run.tfjs}) ` +
    `in ${run.seconds.toFixed(0)} s.`
  );
}

/** The Data bullet of a report whose every seed draws its own class-balanced MNIST split. */
export function mnistSplitBullet(
  sizes: { trainSize: number; heldOutSize: number },
  seeds: readonly number[],
): string {
  return (
    `- Data: real MNIST digits (the \`mnist\` package); per seed a class-balanced split into ` +
    `${sizes.trainSize} training and ${sizes.heldOutSize} disjoint held-out digits. Seeds: ${seeds.join(', ')}.`
  );
}

/** The start of a Network bullet when the digits are average-pooled by `inputPool` first. */
export function pooledInputText(inputPool: number): string {
  return inputPool > 1 ? `digits average-pooled to ${28 / inputPool}×${28 / inputPool}, then ` : '';
}

/**
 * Prints an experiment's outcome on stdout: `title`, the table and one line per claim with its
 * verdict; warns on stderr when runs leaked tensors.
 */
export function printOutcome(
  title: string,
  table: { header: readonly string[]; rows: readonly (readonly unknown[])[] },
  claims: readonly { claim: string; verdict: string }[],
  runs: readonly { leaked: number }[],
): void {
  console.log(title);
  console.log(formatTable(table.header, table.rows));
  console.log('');
  for (const c of claims) console.log(`${c.verdict.padEnd(13)} ${c.claim}`);
  const leaks = runs.filter((r) => r.leaked !== 0);
  if (leaks.length > 0) console.error(`warning: tensors leaked in ${leaks.length} run(s)`);
}

/** The last line of a run: what {@link writeReport} wrote, and the time since `started` (ms). */
export function wroteLine(
  written: { markdown: string; charts: string[] },
  started: number,
): string {
  return (
    `\nWrote ${path.relative(process.cwd(), written.markdown)} and ${written.charts.length} charts; ` +
    `${((Date.now() - started) / 1000).toFixed(0)} s in all.`
  );
}
