/**
 * A/B timing: the two candidates run interleaved (A, B, B, A, …) so drift in machine load hits
 * both alike; we report the median and interquartile range of each and the ratio of medians.
 */
import { performance } from 'perf_hooks';

/** Summary of one candidate's timings, in milliseconds. */
export interface TimingSummary {
  median: number;
  q1: number;
  q3: number;
  runs: number;
}

/** Result of an interleaved A/B measurement. */
export interface ABResult {
  a: TimingSummary;
  b: TimingSummary;
  /** median(a) / median(b). */
  ratio: number;
}

function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Median and quartiles of a sample (linear interpolation between order statistics). */
export function summarize(samples: number[]): TimingSummary {
  const s = [...samples].sort((x, y) => x - y);
  return { median: quantile(s, 0.5), q1: quantile(s, 0.25), q3: quantile(s, 0.75), runs: s.length };
}

async function timeOnce(fn: () => unknown | Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/**
 * Times `a` and `b` interleaved: `warmup` untimed runs of each, then `runs` timed runs of each,
 * alternating which goes first so neither always runs on a warmer cache.
 */
export async function interleaved(
  a: () => unknown | Promise<unknown>,
  b: () => unknown | Promise<unknown>,
  { runs = 20, warmup = 3 }: { runs?: number; warmup?: number } = {},
): Promise<ABResult> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      ta.push(await timeOnce(a));
      tb.push(await timeOnce(b));
    } else {
      tb.push(await timeOnce(b));
      ta.push(await timeOnce(a));
    }
  }
  const sa = summarize(ta);
  const sb = summarize(tb);
  return { a: sa, b: sb, ratio: sa.median / sb.median };
}
