/**
 * A/B timing, shared by `npm run bench` and the experiments: the two candidates run interleaved
 * (A, B, B, A, …) so drift in machine load hits both alike; we report the median and
 * interquartile range of each, the ratio of medians, and the median of the per-pair ratios (the
 * robust number on a shared machine: a load spike slows both samples of a pair).
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
  /** The median over pairs i of a_i / b_i. */
  pairedRatio: number;
  /** Calls of each candidate per timed sample (see `minSampleMs`). */
  callsPerSample: number;
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

/** Mean ms per call of `calls` back-to-back calls of `fn`. */
async function timeCalls(fn: () => unknown | Promise<unknown>, calls: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await fn();
  return (performance.now() - t0) / calls;
}

/** Options of {@link interleaved}. */
export interface InterleavedOptions {
  /** Timed samples of each candidate (default 20). */
  runs?: number;
  /** Untimed runs of each before timing (default 3). */
  warmup?: number;
  /**
   * Each sample repeats a call until it lasts about this long (calibrated once on `a`), so timer
   * and scheduler jitter stay small next to fast calls. Default 0: one call per sample.
   */
  minSampleMs?: number;
}

/**
 * Times `a` and `b` interleaved: `warmup` untimed runs of each, then `runs` timed samples of each,
 * alternating which goes first so neither always runs on a warmer cache. Times are per call.
 */
export async function interleaved(
  a: () => unknown | Promise<unknown>,
  b: () => unknown | Promise<unknown>,
  { runs = 20, warmup = 3, minSampleMs = 0 }: InterleavedOptions = {},
): Promise<ABResult> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const calls = minSampleMs > 0 ? Math.max(1, Math.ceil(minSampleMs / (await timeCalls(a, 3)))) : 1;
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      ta.push(await timeCalls(a, calls));
      tb.push(await timeCalls(b, calls));
    } else {
      tb.push(await timeCalls(b, calls));
      ta.push(await timeCalls(a, calls));
    }
  }
  const sa = summarize(ta);
  const sb = summarize(tb);
  return {
    a: sa,
    b: sb,
    ratio: sa.median / sb.median,
    pairedRatio: summarize(ta.map((t, i) => t / tb[i])).median,
    callsPerSample: calls,
  };
}
