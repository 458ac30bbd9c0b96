/**
 * Runs experiments/vanishing-gradient/main.ts --quick as a child process (vega is ESM-only, which jest's
 * CommonJS runtime cannot load) and checks its claims from its results.json.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readResults } from '../experiments/lib/report';
import { convergence } from '../experiments/vanishing-gradient/report';
import type { Result } from '../experiments/vanishing-gradient/run';
import { findIn, quickRun } from './experiment_run';

interface ConfigResult {
  name: string;
  gradInit: number[];
  ratioInit: number;
  ratioFinal: number;
  maxGradNorm: number;
  nonFiniteLoss: boolean;
  allFinite: boolean;
  lossPerBatch: number[];
  valLossPerEpoch: number[];
  epochsRun: number;
  stoppedBy: string;
  error: string | null;
}
interface Results {
  settings: { depth: number; quick: boolean };
  configs: ConfigResult[];
  interpretation: string[];
}

// Only stops a hung run; speed is not asserted in unit tests (`npm run experiments -- --quick`
// reports each experiment's wall time).
const HANG_TIMEOUT_MS = 170_000;

describe('experiments/vanishing-gradient --quick', () => {
  const quick = quickRun('vanishing-gradient', HANG_TIMEOUT_MS);
  const out = quick.out;
  let results: Results;
  let stdout: string;
  const config = (name: string): ConfigResult =>
    findIn(results.configs, (c) => c.name === name, `configuration ${name}`);

  beforeAll(async () => {
    stdout = (await quick.run()).stdout;
    results = readResults<Results>(out);
  }, HANG_TIMEOUT_MS + 10_000);

  afterAll(() => quick.remove());

  it('writes the table, report.md, results.json and SVG charts', () => {
    expect(stdout).toMatch(/config\s+ratio init/);
    const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(report).toContain('| config | ratio init |');
    expect(report).toContain('## Interpretation');
    for (const chart of ['grad-norms-init', 'grad-norms-trained', 'loss-curves', 'accuracy']) {
      expect(fs.readFileSync(path.join(out, `${chart}.svg`), 'utf8')).toMatch(/^<svg/);
    }
    expect(results.settings).toMatchObject({ depth: 20, quick: true });
    expect(config('sigmoid').gradInit).toHaveLength(20);
  });

  it('sigmoid gradients vanish at depth 20: first/last ratio < 1e-3', () => {
    expect(config('sigmoid').ratioInit).toBeLessThan(1e-3);
  });

  it('residual relu keeps the ratio within [0.1, 10] at init', () => {
    const { ratioInit } = config('residual-relu');
    expect(ratioInit).toBeGreaterThanOrEqual(0.1);
    expect(ratioInit).toBeLessThanOrEqual(10);
  });

  it('relu + BatchNorm has its ratio within [0.1, 10] once training has started', () => {
    // At initialization a deep BN-ReLU net's gradient grows towards the input (Yang et al. 2019,
    // "A Mean Field Theory of Batch Normalization"); the experiment reports that ratio as measured.
    const { ratioFinal } = config('relu+bn');
    expect(ratioFinal).toBeGreaterThanOrEqual(0.1);
    expect(ratioFinal).toBeLessThanOrEqual(10);
  });

  it('the unclipped exploding run blows up while the clipped one stays finite', () => {
    const unclipped = config('exploding');
    expect(unclipped.nonFiniteLoss || unclipped.maxGradNorm > 1e3).toBe(true);
    const clipped = config('exploding+clip');
    expect(clipped.error).toBeNull();
    expect(clipped.allFinite).toBe(true);
    expect(clipped.lossPerBatch.every((l) => Number.isFinite(l))).toBe(true);
  });

  it('dropout does not cure vanishing gradients: sigmoid + dropout ratio < 1e-3', () => {
    expect(config('sigmoid+dropout').ratioInit).toBeLessThan(1e-3);
  });

  it('records the validation loss the stopping rule watches, and why each run stopped', () => {
    // --quick trains 2 epochs, fewer than the plateau rule's patience + 1: every run ends on the
    // budget, and the report says that none converged.
    for (const c of results.configs) {
      expect(c.valLossPerEpoch).toHaveLength(c.epochsRun);
      expect(c.stoppedBy).toBe('budget');
    }
    const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(report).toContain('0 of 11 runs stopped on the plateau rule');
    expect(report).toMatch(/the 2-epoch budget ended sigmoid seed 1, tanh seed 1/);
  });
});

describe('vanishing-gradient convergence line', () => {
  it('counts plateau stops and names the runs the budget ended', () => {
    const run = (name: string, epochs: number[], by: string[]) =>
      ({ name, epochsRunSeeds: epochs, stoppedBySeeds: by }) as unknown as Result;
    expect(
      convergence(
        [run('a', [4, 12], ['plateau', 'plateau']), run('b', [7, 40], ['plateau', 'budget'])],
        40,
        3,
      ),
    ).toBe(
      '3 of 4 runs stopped on the plateau rule (4–12 epochs); the 40-epoch budget ended b seed 4 (not converged).',
    );
  });
});
