/**
 * Runs experiments/small-batch/main.ts --quick as a child process (the charts use ESM-only vega,
 * which jest cannot load in-process) and checks what it measured: every configuration in every
 * setting, the BN measurements, the recalibrated statistics, and one verdict per claim.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readResults } from '../experiments/lib/report';
import { findIn, quickRun } from './experiment_run';
import type { Claim, Summary } from '../experiments/small-batch/analysis';
import { batchIndices, SmallBatchRun } from '../experiments/small-batch/train';

interface Results {
  settings: { seeds: number; steps: number };
  summaries: Summary[];
  claims: Claim[];
  runs: SmallBatchRun[];
}

// Only stops a hung run; speed is not asserted in unit tests.
const HANG_TIMEOUT_MS = 240_000;

describe('experiments/small-batch --quick', () => {
  const quick = quickRun('small-batch', HANG_TIMEOUT_MS);
  const out = quick.out;
  let results: Results;
  let stderr: string;
  const summary = (setting: string, config: string): Summary =>
    findIn(
      results.summaries,
      (s) => s.setting === setting && s.config === config,
      `${config} at ${setting}`,
    );

  beforeAll(async () => {
    stderr = (await quick.run()).stderr;
    results = readResults<Results>(out);
  }, HANG_TIMEOUT_MS + 10_000);

  afterAll(() => quick.remove());

  it('trains every configuration in every setting (Ghost BN only at batch 32) and writes the report', () => {
    const ids = (setting: string) =>
      results.summaries.filter((s) => s.setting === setting).map((s) => s.config);
    const everywhere = ['builtin', 'bn', 'bn-recalibrated', 'renorm', 'conv-bn'];
    const batchIndependent = ['groupnorm', 'layernorm', 'none'];
    expect(ids('b2')).toEqual([...everywhere, ...batchIndependent]);
    expect(ids('b32')).toEqual([...everywhere, 'ghost', 'ghost-renorm', ...batchIndependent]);
    expect(ids('two-class')).toEqual(ids('b32'));
    expect(results.runs).toHaveLength((7 + 9 + 9) * results.settings.seeds);
    const bns = { none: 0, groupnorm: 0, layernorm: 0, 'conv-bn': 2 } as Record<string, number>;
    for (const run of results.runs) {
      expect(run.leaked).toBe(0);
      expect(run.heldOutAcc).toBeGreaterThanOrEqual(0);
      expect(run.bn).toHaveLength(bns[run.config] ?? 3);
    }
    const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(report).toContain('## Claims and verdicts');
    for (const chart of ['held_out_accuracy', 'variance_ratio', 'train_inference_gap']) {
      expect(fs.readFileSync(path.join(out, `${chart}.svg`), 'utf8')).toMatch(/^<svg/);
    }
    expect(stderr).toMatch(/^\[small-batch\] seed 1 b2\/\S+ started \| \d+\/\d+/m);
    expect(stderr).toMatch(/^\[small-batch\] done \| (\d+)\/\1 \(100%\)/m);
  });

  it("the built-in and the pack's BN train alike; only the running variance differs (Bessel at the dense BN)", () => {
    for (const setting of ['b2', 'b32', 'two-class']) {
      const builtin = summary(setting, 'builtin');
      const pack = summary(setting, 'bn');
      expect(Math.abs(builtin.finalTrainLoss!.mean - pack.finalTrainLoss!.mean)).toBeLessThan(1e-3);
    }
    // At batch 2 the dense BN's m is 2: the built-in feeds σ²_B, the pack 2·σ²_B.
    const dense = (s: Summary) => s.bn[2].varianceRatio.mean;
    expect(dense(summary('b2', 'builtin'))).toBeLessThan(0.8 * dense(summary('b2', 'bn')));
  });

  it('recalibrateBatchNorm brings every variance ratio close to 1', () => {
    for (const setting of ['b2', 'b32', 'two-class']) {
      for (const b of summary(setting, 'bn-recalibrated').bn) {
        expect(Math.abs(b.varianceRatio.mean - 1)).toBeLessThan(0.25);
      }
    }
  });

  it('has one verdict per claim', () => {
    expect(results.claims.length).toBeGreaterThanOrEqual(9);
    for (const c of results.claims) expect(['holds', 'does not hold']).toContain(c.verdict);
  });
});

describe('small-batch batch streams', () => {
  const labels = Int32Array.from({ length: 200 }, (_, i) => i % 10);

  test('i.i.d.: every sample once per pass, seeded', () => {
    const batches = batchIndices(labels, 'iid', 8, 25, 3);
    expect(batches).toHaveLength(25);
    const seen = batches.flatMap((b) => Array.from(b));
    expect(new Set(seen).size).toBe(200);
    expect(batchIndices(labels, 'iid', 8, 25, 3)).toEqual(batches);
  });

  test('two classes: half the batch from each of two distinct classes, no repeats', () => {
    for (const batch of batchIndices(labels, 'two-class', 16, 20, 4)) {
      const classes = Array.from(batch, (i) => labels[i]);
      const counts = new Map<number, number>();
      for (const c of classes) counts.set(c, (counts.get(c) ?? 0) + 1);
      expect([...counts.values()]).toEqual([8, 8]);
      expect(new Set(batch).size).toBe(16);
    }
  });
});
