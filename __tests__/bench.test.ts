import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { interleaved, summarize } from '../experiments/lib/timing';

const root = path.resolve(__dirname, '..');

describe('bench', () => {
  test('summarize: median and quartiles by linear interpolation', () => {
    expect(summarize([4, 1, 3, 2])).toEqual({ median: 2.5, q1: 1.75, q3: 3.25, runs: 4 });
  });

  test('interleaved runs each candidate the same number of times and alternates the order', async () => {
    const order: string[] = [];
    const r = await interleaved(
      () => order.push('a'),
      () => order.push('b'),
      { runs: 4, warmup: 1 },
    );
    expect(order).toEqual(['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b', 'b', 'a']);
    expect(r.a.runs).toBe(4);
    expect(r.b.runs).toBe(4);
  });

  test('npm run bench -- --quick runs every pair, the masked BatchNorm rows, the renorm and Ghost BatchNorm rows, the fold and export measurements and the conv-net training rows (wasm)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-bench-'));
    try {
      execFileSync(
        path.join(root, 'node_modules', '.bin', 'tsx'),
        [
          'bench/bench.ts',
          '--quick',
          '--backends',
          'wasm',
          '--out',
          path.join(dir, 'B.md'),
          '--json',
          path.join(dir, 'b.json'),
        ],
        { cwd: root, stdio: 'pipe', timeout: 120000 },
      );
      const { measurements } = JSON.parse(fs.readFileSync(path.join(dir, 'b.json'), 'utf8'));
      const trained = new Set(
        measurements
          .filter((m: { kind: string }) => m.kind === 'train step')
          .map((m: { pair: string }) => m.pair),
      );
      expect([...trained].sort()).toEqual([
        'AlphaDropout 0.1',
        'BatchNorm',
        'Dropout 0.5',
        'GaussianDropout 0.3',
        'SpatialDropout1D 0.3',
      ]);
      expect(measurements.filter((m: { kind: string }) => m.kind === 'fold predict')).toHaveLength(
        2,
      );
      expect(
        measurements.filter((m: { kind: string }) => m.kind === 'masked train step'),
      ).toHaveLength(2);
      // Batch Renormalization and Ghost BatchNorm against plain BatchNorm (MLP shape in --quick).
      const renormGhost = measurements.filter(
        (m: { kind: string }) => m.kind === 'renorm/ghost train step',
      );
      expect(renormGhost.map((m: { pair: string }) => m.pair)).toEqual([
        'BatchNorm renorm / plain',
        'BatchNorm virtualBatchSize 32 (4 virtual batches) / plain',
        'BatchNorm renorm / plain (model)',
        'BatchNorm virtualBatchSize 32 / plain (model)',
      ]);
      expect(
        measurements.filter((m: { kind: string }) => m.kind === 'renorm/ghost forward'),
      ).toHaveLength(1);
      // GroupNorm / RMSNorm layer steps (issue 22), at a quarter batch in --quick.
      expect(
        measurements
          .filter((m: { kind: string }) => m.kind === 'norm train step')
          .map((m: { pair: string }) => m.pair),
      ).toEqual(['GroupNorm 4 groups / pack BatchNorm', 'RMSNorm / tf.layers.layerNormalization']);
      for (const kind of ['export predict', 'export time']) {
        expect(measurements.filter((m: { kind: string }) => m.kind === kind)).toHaveLength(1);
      }
      for (const m of measurements)
        expect(Number.isFinite(m.result.ratio) && m.result.ratio > 0).toBe(true);
      const markdown = fs.readFileSync(path.join(dir, 'B.md'), 'utf8');
      expect(markdown).toMatch(/## Targets/);
      // Conv-net training on wasm with the pack's kernels: step time, GFLOP/s, kernel times.
      expect(markdown).toMatch(/## Conv-net training on wasm/);
      const { wasmTraining } = JSON.parse(fs.readFileSync(path.join(dir, 'b.json'), 'utf8'));
      expect(wasmTraining.wasmStep.median).toBeGreaterThan(0);
      expect(wasmTraining.trainStepGflops).toBeGreaterThan(0);
      expect(wasmTraining.matmulGflops).toBeGreaterThan(0);
      expect(wasmTraining['CNN conv16-conv32, batch 32'].Conv2DBackpropFilter).toBeGreaterThan(0);
      const depthwise = wasmTraining['CNN conv16 → depthwise 3×3 → pointwise conv32, batch 32'];
      expect(depthwise.DepthwiseConv2dNativeBackpropFilter).toBeGreaterThan(0);
      expect(depthwise.DepthwiseConv2dNativeBackpropInput).toBeGreaterThan(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120000);
});
