/**
 * The browser section of `npm run bench` (`--browser`): BatchNorm and dropout training steps,
 * pack vs built-in, on webgl and webgpu in headless Chromium (browser/bench_page.ts, opened with
 * browser/harness.ts, the browser test's set-up). Both GPUs are software (SwiftShader): only the
 * ratios mean something, not the absolute times, so the section reports ratios only.
 */
import type { ABResult } from '../experiments/lib/timing';
import type { BenchRow } from '../browser/bench_page';
import { CHROMIUM, openSession, runPage } from '../browser/harness';

/** The section: a table (ratios only), notes and the raw numbers for reports/bench.json. */
export interface BrowserBenchReport {
  title: string;
  header: string[];
  rows: string[][];
  notes: string[];
  json: { userAgent: string; rows: BenchRow[] };
}

/** Times the pairs of browser/bench_page.ts on each of `backends` in one Chromium. */
export async function measureBrowser(options: {
  backends: string[];
  runs: number;
  warmup: number;
}): Promise<BrowserBenchReport> {
  const session = await openSession(['bench_page.ts']);
  const all: BenchRow[] = [];
  let userAgent = '';
  try {
    for (const backend of options.backends) {
      const run = await runPage<{ rows: BenchRow[]; userAgent: string }>(
        session,
        `bench_page.html?backend=${backend}&runs=${options.runs}&warmup=${options.warmup}`,
        1800000,
        (line) => console.error(line),
      );
      await run.page.close();
      if (run.error || !run.report) {
        throw new Error(`browser bench on ${backend} failed: ${run.error ?? run.pageErrors}`);
      }
      all.push(...run.report.rows);
      userAgent = run.report.userAgent;
    }
  } finally {
    await session.close();
  }
  const ratio = (r: ABResult) => r.ratio.toFixed(3);
  return {
    title: '## In the browser (software GPUs: ratios, not absolute times)',
    header: ['backend', 'model', 'pair', 'train step ratio (pack / built-in)', 'paired ratio'],
    rows: all.map((r) => [
      r.backend,
      r.model,
      r.pair,
      ratio(r.result),
      r.result.pairedRatio.toFixed(3),
    ]),
    notes: [
      `Headless Chromium (${CHROMIUM}, ${userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? 'unknown'}):`,
      'WebGL2 on ANGLE over SwiftShader, WebGPU on SwiftShader Vulkan, so both run on the CPU;',
      `${options.runs} interleaved samples of each after ${options.warmup} warm-up steps, each step`,
      'ending with an awaited read of the loss. Ratio = median(pack) / median(built-in); the paired',
      'ratio is the median of per-pair ratios (robust to load spikes on a shared machine).',
    ],
    json: { userAgent, rows: all },
  };
}
