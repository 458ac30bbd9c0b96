/**
 * Runs experiments/cnn-dropout-bn/main.ts --quick as a child process (the charts use ESM-only
 * vega, which jest cannot load in-process) and checks what it measured: every configuration, the
 * variance ratio at every BN before and after recalibration, the parameter count of the bias, and
 * a verdict per claim that follows the numbers.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readResults } from '../experiments/lib/report';
import { findIn, quickRun } from './experiment_run';
import type { Claim, ConfigSummary } from '../experiments/cnn-dropout-bn/analysis';
import type { CnnRun } from '../experiments/cnn-dropout-bn/train';

interface Results {
  settings: { seeds: number; epochs: number; filters1: number; filters2: number; dense: number };
  configs: ConfigSummary[];
  claims: Claim[];
  runs: CnnRun[];
}

// Only stops a hung run; speed is not asserted in unit tests.
const HANG_TIMEOUT_MS = 240_000;

describe('experiments/cnn-dropout-bn --quick', () => {
  const quick = quickRun('cnn-dropout-bn', HANG_TIMEOUT_MS);
  const out = quick.out;
  let results: Results;
  let stderr: string;
  const config = (id: string): ConfigSummary =>
    findIn(results.configs, (c) => c.id === id, `configuration ${id}`);

  beforeAll(async () => {
    stderr = (await quick.run()).stderr;
    results = readResults<Results>(out);
  }, HANG_TIMEOUT_MS + 10_000);

  afterAll(() => quick.remove());

  it('runs the twelve configurations and writes the report and charts', () => {
    expect(results.configs.map((c) => c.id)).toEqual([
      'none',
      'dropout',
      'spatial-dropout',
      'dropblock',
      'bn',
      'bn-bias',
      'bn-after-relu',
      'bn-dropout-before',
      'no-bn-dropout-before',
      'bn-gaussian-before',
      'bn-uout-before',
      'bn-dropout-after',
    ]);
    expect(results.runs).toHaveLength(12 * results.settings.seeds);
    for (const run of results.runs) {
      expect(run.curve).toHaveLength(results.settings.epochs);
      expect(run.leaked).toBe(0);
    }
    const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(report).toContain('## Claims and verdicts');
    for (const chart of ['held_out_accuracy', 'loss_curves', 'loss_gap', 'variance_shift']) {
      expect(fs.readFileSync(path.join(out, `${chart}.svg`), 'utf8')).toMatch(/^<svg/);
    }
  });

  it('prints progress lines to a log (stderr is not a terminal here)', () => {
    expect(stderr).toMatch(/^\[cnn-dropout-bn\] seed 1 \S+ started \| \d+\/\d+ \(\d+%\) elapsed/m);
    expect(stderr).toMatch(/^\[cnn-dropout-bn\] done \| (\d+)\/\1 \(100%\)/m);
    expect(stderr).not.toMatch(/Hi,? (there|looks like)|speed things up/i);
  });

  it('the bias before BN costs exactly one parameter per channel and nothing else', () => {
    const { filters1, filters2, dense } = results.settings;
    expect(config('bn-bias').params - config('bn').params).toBe(filters1 + filters2 + dense);
    expect(config('bn').maxBiasBeforeBn).toBeNull();
    expect(config('bn-bias').maxBiasBeforeBn).toBeGreaterThanOrEqual(0);
  });

  it('measures the variance ratio at the three BNs; dropout sits before the later two only when asked', () => {
    for (const id of ['bn', 'bn-bias', 'bn-after-relu', 'bn-dropout-before', 'bn-dropout-after']) {
      expect(config(id).shifts.map((s) => s.index)).toEqual([0, 1, 2]);
    }
    expect(config('bn-dropout-before').shifts.map((s) => s.afterDropout)).toEqual([
      false,
      true,
      true,
    ]);
    for (const id of ['bn-gaussian-before', 'bn-uout-before']) {
      expect(config(id).shifts.map((s) => s.afterDropout)).toEqual([false, true, true]);
    }
    expect(config('bn-dropout-after').shifts.every((s) => !s.afterDropout)).toBe(true);
    expect(config('no-bn-dropout-before').shifts).toEqual([]);
    expect(config('none').shifts).toEqual([]);
    expect(config('none').recalibrated).toBeNull();
  });

  it('after recalibrateBatchNorm the held-out variance ratio is close to 1 at every BN', () => {
    // Recalibrated on the training digits, measured on held-out ones: equal up to the difference
    // between the two sets' activation variances.
    for (const id of ['bn', 'bn-dropout-before', 'bn-dropout-after']) {
      for (const s of config(id).shifts) {
        expect(Math.abs(s.after.mean - 1)).toBeLessThan(0.25);
      }
    }
  });

  it('has one verdict per claim, and the bias claim follows the numbers', () => {
    expect(results.claims).toHaveLength(12);
    for (const c of results.claims) expect(['holds', 'does not hold']).toContain(c.verdict);
    const bias = results.claims.find((c) => c.claim.startsWith('A bias before BN'))!;
    const same =
      Math.abs(
        config('bn').stats.finalHeldOutAcc.mean - config('bn-bias').stats.finalHeldOutAcc.mean,
      ) <= 0.005;
    expect(bias.verdict).toBe(same ? 'holds' : 'does not hold');
  });
});
