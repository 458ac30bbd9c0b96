/**
 * Every program in examples/ runs, in its `--quick` mode (fewer digits and epochs), and prints
 * what its doc comment says it shows. The examples train without seeds on purpose (they are
 * meant to be copied), so the checks are on facts that hold for any initialization.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';

const ROOT = path.resolve(__dirname, '..');
const EXAMPLES = path.join(ROOT, 'examples');
// Only stops a hung run; speed is not asserted in unit tests.
const HANG_TIMEOUT_MS = 120_000;

const stderrs: Record<string, string> = {};

async function run(name: string): Promise<string> {
  const { stdout, stderr } = await promisify(execFile)(
    path.join(ROOT, 'node_modules', '.bin', 'tsx'),
    [path.join('examples', `${name}.ts`), '--quick'],
    { cwd: ROOT, timeout: HANG_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
  );
  stderrs[name] = stderr;
  return stdout;
}

/** The numbers after `label` on each line that has it. */
function numbersAfter(stdout: string, label: RegExp): number[] {
  return stdout
    .split('\n')
    .map((line) => label.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
}

describe('examples/', () => {
  it('are short programs: one file each, at most about 150 lines, each with an npm script', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const programs = fs
      .readdirSync(EXAMPLES)
      .filter((f) => f.endsWith('.ts') && f !== 'mnist.ts')
      .map((f) => f.replace(/\.ts$/, ''));
    expect(programs.sort()).toEqual(
      ['batchnorm-cnn', 'dropout-mlp', 'fold-export', 'gradient-clipping', 'mc-dropout'].sort(),
    );
    for (const name of [...programs, 'mnist']) {
      const lines = fs.readFileSync(path.join(EXAMPLES, `${name}.ts`), 'utf8').split('\n').length;
      expect({ name, short: lines <= 160 }).toEqual({ name, short: true });
    }
    for (const name of programs) {
      expect(pkg.scripts[`example:${name}`]).toBe(`tsx examples/${name}.ts`);
    }
  });

  it(
    'dropout-mlp trains the MLP without and with each dropout variant',
    async () => {
      const stdout = await run('dropout-mlp');
      const rows = stdout
        .split('\n')
        .filter((l) => /^(none|dropout|gaussianDropout|dropConnect) /.test(l));
      expect(rows.map((r) => r.split(/\s+/)[0])).toEqual([
        'none',
        'dropout',
        'gaussianDropout',
        'dropConnect',
      ]);
      for (const row of rows) {
        const [trainAcc, testAcc, testLoss] = row.split(/\s+/).slice(1).map(Number);
        for (const acc of [trainAcc, testAcc]) expect(acc).toBeGreaterThanOrEqual(0);
        for (const acc of [trainAcc, testAcc]) expect(acc).toBeLessThanOrEqual(1);
        expect(testLoss).toBeGreaterThan(0);
      }
    },
    HANG_TIMEOUT_MS,
  );

  it(
    'batchnorm-cnn trains conv (no bias) → BatchNorm → ReLU on a backend that trains conv nets',
    async () => {
      const stdout = await run('batchnorm-cnn');
      // 3×3×1×8 kernel weights and no bias.
      expect(stdout).toMatch(
        /conv2d_Conv2D1 \(Conv2D\)\s+\[\[null,28,28,1\]\]\s+\[null,28,28,8\]\s+72\s/,
      );
      const [accuracy] = numbersAfter(stdout, /^test accuracy: ([\d.]+) \(1000 digits\)/);
      expect(accuracy).toBeGreaterThanOrEqual(0);
      expect(accuracy).toBeLessThanOrEqual(1);
      // pickBackend({training: true}) picks wasm with the pack's gradient kernels and says so in
      // the one line on stderr; tfjs's "install the node backend" banner is not printed.
      expect(stderrs['batchnorm-cnn']).toMatch(
        /^tfjs backend: wasm \(tfjs [\d.]+; conv-net training kernels added by tfjs-dropnorm: [\w, ]*Conv2DBackpropFilter[\w, ]*\)\n$/,
      );
      const [variance] = numbersAfter(stdout, /moving variance, channel 0: ([\d.]+)/);
      expect(variance).toBeGreaterThan(0);
      expect(variance).not.toBe(1); // it moved from its initial value
    },
    HANG_TIMEOUT_MS,
  );

  it(
    'fold-export exports for plain tfjs: BNs folded, dropout removed, DropConnect replaced, same outputs, built-in classes only',
    async () => {
      const stdout = await run('fold-export');
      const lines = (prefix: string) =>
        stdout.split('\n').filter((l) => l.startsWith(`${prefix} `));
      expect(lines('folded')).toEqual(['folded   bn1 into dense1', 'folded   bn2 into dense2']);
      expect(lines('removed').map((l) => l.split(':')[0])).toEqual([
        'removed  dropout1 (DropnormDropout)',
        'removed  dropout2 (DropnormDropout)',
        'removed  relu1 (Activation)',
        'removed  relu2 (Activation)',
      ]);
      expect(lines('replaced')).toHaveLength(1);
      expect(lines('replaced')[0]).toMatch(/^replaced out \(DropnormDropConnectDense\) by Dense: /);
      expect(stdout).toMatch(/^skipped {2}0 layers$/m);
      expect(stdout).toMatch(/^layers 10 → 4$/m);
      const [, before, after] = /^parameters (\d+) → (\d+)$/m.exec(stdout)!.map(Number);
      // The Dense/BN/DropConnect parameter counts of 784-128-64-10, written out.
      expect(before).toBe(784 * 128 + 4 * 128 + 128 * 64 + 4 * 64 + 64 * 10 + 10);
      // Each BN's 4 per channel go, a bias per channel comes in.
      expect(before - after).toBe(4 * (128 + 64) - (128 + 64));
      const [maxDiff] = numbersAfter(stdout, /max \|original − exported\| .*: ([\d.e+-]+)/);
      expect(maxDiff).toBeLessThan(1e-5);
      const [original, exported] = /^test accuracy: original ([\d.]+), exported ([\d.]+)$/m
        .exec(stdout)!
        .slice(1)
        .map(Number);
      // Equal up to a digit whose top two probabilities tie within float rounding (1 of 500).
      expect(Math.abs(exported - original)).toBeLessThanOrEqual(1 / 500 + 1e-9);
      expect(stdout).toMatch(
        /^model\.json classes: InputLayer, Flatten, Dense \(from tfjs-dropnorm: 0\)$/m,
      );
      expect(stdout).toMatch(
        /: model\.json, weights\.[0-9a-f]{16}\.bin; loaded back, same outputs: true$/m,
      );
    },
    HANG_TIMEOUT_MS,
  );

  it(
    'mc-dropout splits the uncertainty of correct and wrong digits into entropies and mutual information',
    async () => {
      const stdout = await run('mc-dropout');
      // onProgress of mcPredictAsync, every 10 samples.
      expect(stdout).toMatch(/^ {2}10\/30 samples\n {2}20\/30 samples\n {2}30\/30 samples$/m);
      const row = (name: string) => {
        const m = new RegExp(
          `^  ${name} \\((\\d+) digits\\)\\s+([\\d.]+)\\s+([\\d.]+)\\s+([\\d.]+)$`,
          'm',
        ).exec(stdout)!;
        const [digits, predictive, expected, mutual] = m.slice(1).map(Number);
        return { digits, predictive, expected, mutual };
      };
      const correct = row('correct');
      const wrong = row('wrong');
      expect(correct.digits + wrong.digits).toBe(1000);
      for (const r of [correct, wrong]) {
        // 0 ≤ expected ≤ predictive ≤ ln 10, and I = H[ȳ] − E H[ŷ_t] (printed to 3 decimals).
        expect(r.expected).toBeGreaterThanOrEqual(0);
        expect(r.predictive).toBeGreaterThanOrEqual(r.expected);
        expect(r.predictive).toBeLessThanOrEqual(Math.log(10) + 1e-3);
        expect(Math.abs(r.predictive - r.expected - r.mutual)).toBeLessThanOrEqual(0.0015);
      }
      // The point of the example: the model is less sure, and its passes disagree more, where it
      // is wrong.
      expect(wrong.predictive).toBeGreaterThan(correct.predictive);
      expect(wrong.mutual).toBeGreaterThan(correct.mutual);
      const listed = numbersAfter(stdout, /mutual information ([\d.]+), predictive/);
      expect(listed).toHaveLength(5);
      expect([...listed].sort((a, b) => b - a)).toEqual(listed);
      expect(listed[4]).toBeGreaterThanOrEqual(Math.max(correct.mutual, wrong.mutual));
    },
    HANG_TIMEOUT_MS,
  );

  it(
    'gradient-clipping shows the vanishing sigmoid gradient and a clipped run that stays finite',
    async () => {
      const stdout = await run('gradient-clipping');
      const [sigmoidRatio, reluRatio] = numbersAfter(stdout, /first\/last ratio ([\d.e+-]+)/);
      expect(sigmoidRatio).toBeLessThan(1e-3);
      expect(reluRatio).toBeGreaterThan(1e-2);
      const losses = (run: string) =>
        new RegExp(`${run}[^\\n]*\\n\\s+loss per epoch: ([^\\n]+)`)
          .exec(stdout)![1]
          .split(', ')
          .map(Number);
      expect(losses('no clipping').some((l) => !Number.isFinite(l) || l > 100)).toBe(true);
      expect(losses('clipOptimizer').every((l) => Number.isFinite(l))).toBe(true);
    },
    HANG_TIMEOUT_MS,
  );
});
