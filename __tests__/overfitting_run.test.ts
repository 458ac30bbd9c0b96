// Runs `experiments/overfitting/main.ts --quick` as a child process (the charts use ESM-only vega, which
// jest cannot load in-process) and checks what it wrote.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ConfigStats, CurvePoint } from '../experiments/lib/curves';
import { fromJson } from '../experiments/lib/report';
import type { PairComparison } from '../experiments/overfitting/interpret';
import type { McSummary } from '../experiments/overfitting/report';
import type { McResult } from '../experiments/overfitting/mc';
import type { RunResult } from '../experiments/overfitting/train';
import type { RunMetrics } from '../experiments/lib/curves';

const ROOT = path.resolve(__dirname, '..');

/** The parts of results.json this test reads. */
interface Results {
  settings: { seeds: number; epochs: number };
  configs: { id: string; stats: ConfigStats; meanCurve: CurvePoint[] }[];
  runs: (RunResult & { metrics: RunMetrics })[];
  agreements: PairComparison[];
  monteCarlo: McSummary | null;
  monteCarloPerSeed: (McResult & { seed: number })[];
  interpretation: string[];
  leaks: unknown[];
}

/** Every number in `value` (recursively), with its path. */
function numbers(value: unknown, at = '$'): [string, number][] {
  if (typeof value === 'number') return [[at, value]];
  if (Array.isArray(value)) return value.flatMap((v, i) => numbers(v, `${at}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => numbers(v, `${at}.${k}`));
  }
  return [];
}

describe('experiments/overfitting --quick', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'overfitting-'));
  let status: number | null = null;
  let stderr = '';
  let stdout = '';

  // Speed is not asserted here (no timed unit tests): `npm run experiments -- --quick` reports each
  // experiment's wall time. The timeout only stops a hung run.
  beforeAll(() => {
    const run = spawnSync(
      'npx',
      ['tsx', 'experiments/overfitting/main.ts', '--quick', '--out', out],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 170_000,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    status = run.status;
    stdout = run.stdout;
    stderr = run.stderr;
  }, 180_000);

  afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

  it('exits 0 and writes the report, the JSON and the charts', () => {
    if (status !== 0) throw new Error(`exit ${status}\n${stderr.slice(-3000)}`);
    for (const file of [
      'report.md',
      'results.json',
      'loss_curves.svg',
      'held_out_loss.svg',
      'gap_loss.svg',
      'gap_accuracy.svg',
      'mc_entropy.svg',
    ]) {
      expect(fs.existsSync(path.join(out, file))).toBe(true);
    }
    expect(stdout).toContain('configuration');
  });

  it('prints plain progress lines to a log: every configuration starts and ends with one', () => {
    for (const config of ['none', 'dropout', 'l2']) {
      expect(stderr).toMatch(new RegExp(`^\\[overfitting\\] seed 1 ${config} started \\|`, 'm'));
      expect(stderr).toMatch(
        new RegExp(
          `^\\[overfitting\\] seed 1 ${config} done: .* \\| \\d+/\\d+ \\(\\d+%\\) elapsed`,
          'm',
        ),
      );
    }
    expect(stderr).not.toMatch(/speed things up/);
  });

  it('runs all nine configurations', () => {
    const results = fromJson<Results>(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.configs.map((c) => c.id)).toEqual([
      'none',
      'tfjs-dropout',
      'dropout',
      'dropout-classic',
      'gaussian-dropout',
      'dropconnect',
      'batchnorm',
      'batchnorm-dropout',
      'l2',
    ]);
    expect(results.runs).toHaveLength(9 * results.settings.seeds);
    for (const run of results.runs) expect(run.curve).toHaveLength(results.settings.epochs);
  });

  it('the baseline overfits: train accuracy ≥ 0.98, final held-out loss > 1.1 × its minimum', () => {
    const results = fromJson<Results>(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    const baseline = results.runs.filter((r) => r.config === 'none');
    expect(baseline.length).toBeGreaterThan(0);
    for (const run of baseline) {
      const heldOut = run.curve.map((p) => p.heldOutLoss);
      expect(run.metrics.finalTrainAcc).toBeGreaterThanOrEqual(0.98);
      expect(heldOut[heldOut.length - 1]).toBeGreaterThan(1.1 * Math.min(...heldOut));
    }
  });

  it('every number in the JSON is finite', () => {
    const results = fromJson<unknown>(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    const all = numbers(results);
    expect(all.length).toBeGreaterThan(1000);
    expect(all.filter(([, v]) => !Number.isFinite(v))).toEqual([]);
  });

  it('reports Monte-Carlo entropies in [0, ln 10], no leaked tensors, and states the agreement', () => {
    const results = fromJson<Results>(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    const mc = results.monteCarlo;
    expect(mc).not.toBeNull();
    for (const h of [mc!.mc.meanEntropyCorrect, mc!.mc.meanEntropyWrong]) {
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThanOrEqual(Math.log(10) + 1e-6);
    }
    expect(results.leaks).toEqual([]);
    expect(results.agreements.some((a) => a.a === 'dropout' && a.b === 'tfjs-dropout')).toBe(true);
    for (const a of results.agreements) {
      expect(['better', 'worse', 'not separated']).toContain(a.verdict);
      expect(a.differences).toHaveLength(results.settings.seeds);
    }
    const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(report).toContain('Pack Dropout (inverted) vs Built-in tf.layers.dropout');
    expect(report).toContain('## Interpretation');
  });

  it("splits the MC entropy into expected entropy and mutual information (mcPredict's outputs)", () => {
    const results = fromJson<Results>(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.monteCarloPerSeed.length).toBeGreaterThan(0);
    for (const run of results.monteCarloPerSeed) {
      expect(run.expectedEntropy).toHaveLength(run.entropy.length);
      expect(run.mutualInformation).toHaveLength(run.entropy.length);
      run.entropy.forEach((h, i) => {
        // H[ȳ] = E_t H[ŷ_t] + I, each ≥ 0 (Jensen: the entropy of the mean is at least the mean entropy).
        expect(run.mutualInformation[i]).toBeGreaterThanOrEqual(0);
        expect(run.expectedEntropy[i]).toBeGreaterThanOrEqual(0);
        expect(Math.abs(h - run.expectedEntropy[i] - run.mutualInformation[i])).toBeLessThan(1e-5);
      });
    }
    const mc = results.monteCarlo!;
    const sum = mc.expectedEntropy.meanWrong + mc.mutualInformation.meanWrong;
    expect(sum).toBeCloseTo(mc.mc.meanEntropyWrong, 5);
    for (const s of [
      mc.expectedEntropy,
      mc.mutualInformation,
      ...mc.perSeed.map((p) => ({ errorAuroc: p.miAuroc })),
    ]) {
      expect(s.errorAuroc).toBeGreaterThanOrEqual(0);
      expect(s.errorAuroc).toBeLessThanOrEqual(1);
    }
    const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(report).toMatch(/\| mutual information \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
  });
});
