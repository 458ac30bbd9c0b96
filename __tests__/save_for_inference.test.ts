/**
 * saveForInference: quantized specs round-trip through tf.loadLayersModel (in process and in a
 * plain-tfjs Node process), the report's numbers are what the saved model does, per-weight
 * precision and bias correction do what they claim, and every bad input is a clear error with
 * nothing written and no tensor left behind.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { saveForInference, SaveForInferenceOptions } from '../src';
import { fileSystem } from '../src/node';

type Sym = tf.SymbolicTensor;

/** A MobileNetV2-like block with folded-BN spread: conv → BN → ReLU → depthwise → BN → ReLU6 → conv → softmax. */
function smallNet(seed = 1): tf.LayersModel {
  const init = () => tf.initializers.glorotUniform({ seed: seed++ });
  const x = tf.input({ shape: [8, 8, 3] });
  let h = tf.layers
    .conv2d({
      filters: 8,
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      kernelInitializer: init(),
      name: 'c1',
    })
    .apply(x) as Sym;
  h = tf.layers.batchNormalization({ name: 'bn1' }).apply(h) as Sym;
  h = tf.layers.reLU({ name: 'r1' }).apply(h) as Sym;
  h = tf.layers
    .depthwiseConv2d({
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      depthwiseInitializer: init(),
      name: 'dw',
    })
    .apply(h) as Sym;
  h = tf.layers.batchNormalization({ name: 'bn2' }).apply(h) as Sym;
  h = tf.layers.reLU({ maxValue: 6, name: 'r2' }).apply(h) as Sym;
  h = tf.layers
    .conv2d({ filters: 6, kernelSize: 1, kernelInitializer: init(), name: 'c2' })
    .apply(h) as Sym;
  h = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as Sym;
  h = tf.layers.dropout({ rate: 0.3, name: 'drop' }).apply(h) as Sym;
  h = tf.layers
    .dense({ units: 4, activation: 'softmax', kernelInitializer: init(), name: 'out' })
    .apply(h) as Sym;
  const model = tf.model({ inputs: x, outputs: h });
  // BN statistics as after training, with a wide per-channel spread of γ/σ.
  for (const name of ['bn1', 'bn2']) {
    const layer = model.getLayer(name);
    const c = layer.weights[0].shape[0]!;
    const values = [
      tf.tensor1d(Array.from({ length: c }, (_, i) => 0.2 + 3 * ((i * 7) % 5))),
      tf.tensor1d(Array.from({ length: c }, (_, i) => 0.1 * (i % 3) - 0.1)),
      tf.tensor1d(Array.from({ length: c }, (_, i) => 0.05 * i)),
      tf.tensor1d(Array.from({ length: c }, (_, i) => 0.5 + (i % 4))),
    ];
    layer.setWeights(values);
    tf.dispose(values);
  }
  return model;
}

/** A save handler that keeps the artifacts in memory and counts its calls. */
/**
 * Dense 32 → 6 named 'd' whose kernel columns spread 0.1…3 (a per-tensor uint8 grid is coarse for
 * the small ones) and bias 0.01: the bias-correction tests' model.
 */
function spreadDense(): tf.LayersModel {
  const x = tf.input({ shape: [32] });
  const layer = tf.layers.dense({ units: 6, name: 'd' });
  const dense = tf.model({ inputs: x, outputs: layer.apply(x) as Sym });
  tf.tidy(() =>
    layer.setWeights([
      tf.randomNormal([32, 6], 0, 1, 'float32', 3).mul(tf.linspace(0.1, 3, 6)),
      tf.fill([6], 0.01),
    ]),
  );
  return dense;
}

function memory() {
  const box: { artifacts: tf.io.ModelArtifacts | null; calls: number } = {
    artifacts: null,
    calls: 0,
  };
  const handler = tf.io.withSaveHandler(async (a) => {
    box.calls++;
    box.artifacts = a;
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
  });
  return { handler, box };
}

async function predictions(artifacts: tf.io.ModelArtifacts, x: tf.Tensor): Promise<Float32Array> {
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const y = model.predict(x) as tf.Tensor;
  const values = (await y.data()) as Float32Array;
  y.dispose();
  model.dispose();
  return values;
}

function relative(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let n = 0;
  a.forEach((v, i) => {
    d += (b[i] - v) ** 2;
    n += v * v;
  });
  return Math.sqrt(d / n);
}

describe('saveForInference', () => {
  let model: tf.LayersModel;
  let calibration: tf.Tensor;
  let reference: Float32Array;

  beforeAll(async () => {
    model = smallNet();
    calibration = tf.randomUniform([24, 8, 8, 3], 0, 1, 'float32', 5);
    const float = memory();
    await saveForInference(model, float.handler);
    reference = await predictions(float.box.artifacts!, calibration);
  });
  afterAll(() => {
    model.dispose();
    calibration.dispose();
  });

  it.each(['float16', 'uint16', 'uint8'] as const)(
    "'%s': specs carry tfjs's quantization, the saved model loads and predicts what the report says",
    async (quantize) => {
      const { handler, box } = memory();
      const before = tf.memory().numTensors;
      const report = await saveForInference(model, handler, { quantize, calibration });
      expect(tf.memory().numTensors).toBe(before);
      expect(box.calls).toBe(1);
      const specs = box.artifacts!.weightSpecs!;
      // BN folded, dropout gone: only built-in Conv2D/DepthwiseConv2D/Dense weights remain.
      expect(report.folded.map((f) => f.batchNorm).sort()).toEqual(['bn1', 'bn2']);
      expect(report.removed.map((r) => r.layer)).toContain('drop');
      expect(specs.map((s) => s.name)).toEqual(report.weights.map((w) => w.name));
      for (const [k, spec] of specs.entries()) {
        expect(spec.dtype).toBe('float32');
        expect(spec.quantization?.dtype).toBe(report.weights[k].dtype);
        if (spec.quantization?.dtype === 'uint8' || spec.quantization?.dtype === 'uint16') {
          expect(typeof spec.quantization.min).toBe('number');
          expect(spec.quantization.scale).toBeGreaterThan(0);
        }
      }
      const bytes = specs.reduce(
        (s, spec, k) =>
          s +
          spec.shape.reduce((a, b) => a * b, 1) *
            { float16: 2, uint16: 2, uint8: 1 }[report.weights[k].dtype as 'uint8'],
        0,
      );
      expect((box.artifacts!.weightData as ArrayBuffer).byteLength).toBe(bytes);
      expect(report.bytes).toBe(bytes);
      expect(report.ratio).toBeCloseTo(bytes / report.float32Bytes, 12);
      if (quantize !== 'uint8') expect(report.ratio).toBe(0.5);
      else expect(report.ratio).toBeLessThanOrEqual(0.3);
      const y = await predictions(box.artifacts!, calibration);
      expect(report.calibration!.samples).toBe(24);
      expect(report.calibration!.relative).toBeCloseTo(relative(reference, y), 6);
      expect(report.calibration!.relative).toBeGreaterThan(0);
      expect(report.calibration!.relative).toBeLessThan(quantize === 'uint8' ? 0.1 : 0.01);
      expect(report.calibration!.totalVariation).toBeGreaterThan(0);
      expect(report.calibration!.top1Agreement).toBeGreaterThan(0.8);
    },
  );

  it("'uint8' mixed precision keeps the depthwise kernel in 2 bytes, and says why", async () => {
    const { handler } = memory();
    const report = await saveForInference(model, handler, { quantize: 'uint8', calibration });
    const byName = Object.fromEntries(
      report.weights.map((w) => [w.layer + ':' + w.name.split('/').pop(), w]),
    );
    expect(byName['dw:depthwise_kernel'].dtype).not.toBe('uint8');
    for (const w of report.weights) {
      expect(w.reason).toMatch(
        /layer-output error [\d.]+% at uint8 \(rank \d+ of \d+ by error per byte\)/,
      );
      expect(w.layerError).toBeGreaterThanOrEqual(0);
    }
    expect(report.ratio).toBeLessThanOrEqual(0.3);
    // Against uniform uint8 (0.25×), both without bias correction (the kernels a correction
    // would serve differ between the two): the 2-byte depthwise kernel halves the output error.
    const options = { quantize: 'uint8', calibration, biasCorrection: false } as const;
    const mixed = await saveForInference(model, memory().handler, options);
    const uniform = await saveForInference(model, memory().handler, {
      ...options,
      precision: 'uniform',
    });
    expect(uniform.ratio).toBe(0.25);
    expect(mixed.calibration!.relative).toBeLessThan(0.75 * uniform.calibration!.relative);
  });

  it("'uint8' budgets: maxWeightError keeps small errors at uint8, maxBytesRatio bounds the bytes", async () => {
    const relaxed = await saveForInference(model, memory().handler, {
      quantize: 'uint8',
      calibration,
      maxWeightError: 1,
    });
    expect(relaxed.ratio).toBe(0.25);
    for (const w of relaxed.weights) expect(w.reason).toMatch(/^uint8: .*within maxWeightError 1$/);
    const generous = await saveForInference(model, memory().handler, {
      quantize: 'uint8',
      calibration,
      maxBytesRatio: 0.5,
    });
    // Every weight fits in 2 bytes: nothing is left at uint8 (except those with zero error).
    expect(generous.ratio).toBeLessThanOrEqual(0.5);
    expect(generous.weights.filter((w) => w.dtype === 'uint8' && (w.layerError ?? 1) > 0)).toEqual(
      [],
    );
  });

  it('bias correction removes the mean output error of a uint8 kernel (Nagel et al. Sec. 4.2)', async () => {
    const dense = spreadDense();
    const data = tf.randomUniform([256, 32], 0, 1, 'float32', 9);
    const meanError = async (biasCorrection: boolean) => {
      const { handler, box } = memory();
      const report = await saveForInference(dense, handler, {
        quantize: 'uint8',
        precision: 'uniform',
        equalize: false,
        calibration: data,
        biasCorrection,
      });
      const y = await predictions(box.artifacts!, data);
      const ref = (await (dense.predict(data) as tf.Tensor).data()) as Float32Array;
      const mean = new Float64Array(6);
      y.forEach((v, i) => (mean[i % 6] += (v - ref[i]) / 256));
      return { report, worst: Math.max(...Array.from(mean, Math.abs)) };
    };
    const without = await meanError(false);
    const withBc = await meanError(true);
    expect(withBc.report.biasCorrected.map((c) => c.layer)).toEqual(['d']);
    const c = withBc.report.biasCorrected[0];
    expect(c.errorAfter).toBeLessThan(c.errorBefore);
    expect([c.channels, c.of]).toEqual([6, 6]);
    expect(without.report.biasCorrected).toEqual([]);
    expect(without.worst).toBeGreaterThan(1e-3);
    expect(withBc.worst).toBeLessThan(without.worst / 5);
    data.dispose();
    dense.dispose();
  });

  it('bias correction leaves alone a mean error that is noise (zero-mean inputs)', async () => {
    const dense = spreadDense();
    // E[(Ŵ − W)·x] = (Ŵ − W)·E[x] = 0: what the calibration mean shows is sampling noise.
    const data = tf.randomNormal([64, 32], 0, 1, 'float32', 11);
    const report = await saveForInference(dense, memory().handler, {
      quantize: 'uint8',
      precision: 'uniform',
      calibration: data,
    });
    const corrected = report.biasCorrected.reduce((s, c) => s + c.channels, 0);
    expect(corrected).toBeLessThanOrEqual(1); // a 2-standard-error test passes noise ~5% of the time
    data.dispose();
    dense.dispose();
  });

  it('saves through a file:// URL; plain tfjs in another Node process loads it and predicts the same', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quant-'));
    try {
      const report = await saveForInference(model, fileSystem(dir), {
        quantize: 'uint8',
        calibration,
      });
      const x = Array.from(await calibration.data());
      const root = path.resolve(__dirname, '..');
      const script = `
const fs = require('fs');
const path = require('path');
const tf = require(${JSON.stringify(path.join(root, 'node_modules/@tensorflow/tfjs'))});
(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  const dir = process.argv[2];
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  const data = Buffer.concat(json.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs: specs,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  }));
  const input = JSON.parse(fs.readFileSync(path.join(dir, 'x.json'), 'utf8'));
  const y = model.predict(tf.tensor(input.x, input.shape));
  console.log(JSON.stringify({ y: Array.from(await y.data()), dtypes: specs.map((s) => s.quantization && s.quantization.dtype),
    pack: Object.keys(tf.serialization.SerializationMap.getMap().classNameMap).some((n) => n.startsWith('Dropnorm')) }));
})().catch((e) => { console.error(e); process.exit(1); });`;
      fs.writeFileSync(path.join(dir, 'plain.js'), script);
      fs.writeFileSync(path.join(dir, 'x.json'), JSON.stringify({ x, shape: calibration.shape }));
      const out = JSON.parse(
        execFileSync('node', [path.join(dir, 'plain.js'), dir], {
          encoding: 'utf8',
          timeout: 60000,
        })
          .trim()
          .split('\n')
          .pop()!,
      ) as { y: number[]; dtypes: string[]; pack: boolean };
      expect(out.pack).toBe(false);
      expect(out.dtypes).toEqual(report.weights.map((w) => w.dtype));
      expect(relative(reference, Float32Array.from(out.y))).toBeCloseTo(
        report.calibration!.relative,
        6,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('errors: clear, nothing written, nothing leaked', () => {
    const cases: Array<[string, () => [unknown, SaveForInferenceOptions], RegExp]> = [
      [
        'unknown dtype',
        () => [undefined, { quantize: 'int8' as 'uint8' }],
        /saveForInference: expected options.quantize to be one of 'float16', 'uint16', 'uint8', received: options.quantize="int8"/,
      ],
      [
        'unknown option',
        () => [undefined, { quantise: 'uint8' } as SaveForInferenceOptions],
        /unknown option 'quantise' \(did you mean 'quantize'\?\)/,
      ],
      [
        'unroutable destination',
        () => ['nowhere://model', { quantize: 'uint8' }],
        /expected destination to be a URL a tf.io save router handles, received: destination="nowhere:\/\/model"/,
      ],
      [
        'destination of the wrong kind',
        () => [42, {}],
        /expected destination to be a tf.io.IOHandler with a save method or a URL string, received: destination=42/,
      ],
      [
        'calibration shape mismatch',
        () => [undefined, { quantize: 'uint8', calibration: tf.zeros([2, 8, 8, 4]) }],
        /expected options.calibration.shape to fit the model input '.*' of shape \[null, 8, 8, 3\].*received: options.calibration.shape=\[2,8,8,4\]/,
      ],
      [
        'uint8-only option with float16',
        () => [undefined, { quantize: 'float16', equalize: true }],
        /expected options.equalize to be given only with quantize: 'uint8'/,
      ],
      [
        'bias correction without calibration',
        () => [undefined, { quantize: 'uint8', biasCorrection: true }],
        /expected options.biasCorrection to come with options.calibration/,
      ],
      [
        'byte budget below uint8',
        () => [undefined, { quantize: 'uint8', maxBytesRatio: 0.2 }],
        /expected options.maxBytesRatio to be a number in \[0.25, 1\], received: options.maxBytesRatio=0.2/,
      ],
    ];
    it.each(cases)('%s', async (_, make, message) => {
      const { handler, box } = memory();
      const before = tf.memory().numTensors;
      const [destination, options] = make();
      const created = tf.memory().numTensors - before;
      await expect(
        saveForInference(model, (destination ?? handler) as tf.io.IOHandler, options),
      ).rejects.toThrow(message);
      expect(box.calls).toBe(0);
      if (options.calibration) (options.calibration as tf.Tensor).dispose();
      expect(tf.memory().numTensors).toBe(before + created - (options.calibration ? 1 : 0));
    });

    it('a model with nothing to quantize', async () => {
      const empty = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [2, 2] })] });
      const { handler, box } = memory();
      const before = tf.memory().numTensors;
      await expect(saveForInference(empty, handler, { quantize: 'float16' })).rejects.toThrow(
        /expected options.quantize to be left out for a model without float32 weights.*no float32 weight to quantize/,
      );
      expect(box.calls).toBe(0);
      expect(tf.memory().numTensors).toBe(before);
      empty.dispose();
    });

    it('a weight float16 cannot hold', async () => {
      const big = tf.sequential({
        layers: [tf.layers.dense({ units: 1, inputShape: [1], name: 'big' })],
      });
      const w = [tf.tensor2d([[1e6]]), tf.tensor1d([0])];
      big.setWeights(w);
      const { handler, box } = memory();
      const before = tf.memory().numTensors;
      await expect(saveForInference(big, handler, { quantize: 'float16' })).rejects.toThrow(
        /expected a value of the weight 'big\/kernel' to be at most 65504 in magnitude for float16, received: .*=1000000. Use quantize: 'uint16'/,
      );
      expect(box.calls).toBe(0);
      expect(tf.memory().numTensors).toBe(before); // the export made on the way is disposed
      tf.dispose(w);
      big.dispose();
    });
  });
});
