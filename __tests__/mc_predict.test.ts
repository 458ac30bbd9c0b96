// mcPredict for real use: any model (built-in dropout, nested, several inputs and outputs), the async
// form, bounded memory, uncertainty summaries, and the always-stochastic `mcDropout` flag.
import * as tf from '@tensorflow/tfjs';
import {
  Dropout,
  MAX_MC_SAMPLES,
  McPredictOptions,
  McProgress,
  expectedEntropy,
  layers,
  mcPredict,
  mcPredictAsync,
  mutualInformation,
  predictiveEntropy,
} from 'tfjs-dropnorm';
import { leakedTensors, maxAbsDiff } from './helpers';

const glorot = (seed: number) => tf.initializers.glorotNormal({ seed });

/** A small classifier: Dense → ReLU → pack Dropout → Dense → softmax. */
function classifier(rate = 0.5): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: 16,
        inputShape: [4],
        activation: 'relu',
        kernelInitializer: glorot(1),
      }),
      layers.dropout({ rate, seed: 3 }),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: glorot(2) }),
    ],
  });
}

/** The model a user loads: built-in BatchNormalization and Dropout, trained statistics. */
function pretrainedStyle(rate: number): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 8, inputShape: [4], kernelInitializer: glorot(5) }),
      tf.layers.batchNormalization({ name: 'bn' }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dropout({ rate, name: 'drop' }),
      tf.layers.dense({ units: 2, kernelInitializer: glorot(6) }),
    ],
  });
  const statistics = [
    tf.randomUniform([8], 0.5, 2, 'float32', 1),
    tf.randomUniform([8], -1, 1, 'float32', 2),
    tf.randomUniform([8], -2, 2, 'float32', 3),
    tf.randomUniform([8], 0.2, 3, 'float32', 4),
  ];
  model.getLayer('bn').setWeights(statistics);
  tf.dispose(statistics);
  return model;
}

const x = tf.randomNormal([10, 4], 0, 1, 'float32', 7);
afterAll(() => x.dispose());

function disposeResult(r: object): void {
  for (const v of Object.values(r)) {
    if (v instanceof tf.Tensor) v.dispose();
    else if (Array.isArray(v) && v[0] instanceof tf.Tensor) tf.dispose(v as tf.Tensor[]);
  }
}

describe('uncertainty summaries: closed forms on hand-built sample sets', () => {
  const ln2 = Math.log(2);
  const ln3 = Math.log(3);
  const H = (p: number[]) => -p.reduce((s, v) => s + (v > 0 ? v * Math.log(v) : 0), 0);

  test('passes that disagree completely: H[mean] = ln C, E[H] = 0, I = ln C', () => {
    // T = 3 one-hot passes over 3 classes, for 1 row.
    const samples = tf.tensor3d([[[1, 0, 0]], [[0, 1, 0]], [[0, 0, 1]]]);
    expect(predictiveEntropy(samples).dataSync()[0]).toBeCloseTo(ln3, 6);
    expect(expectedEntropy(samples).dataSync()[0]).toBeCloseTo(0, 7);
    expect(mutualInformation(samples).dataSync()[0]).toBeCloseTo(ln3, 6);
    samples.dispose();
  });

  test('identical passes: H[mean] = E[H] = H[p], I = 0', () => {
    const p = [0.7, 0.2, 0.1];
    const samples = tf.tensor3d([[p], [p], [p], [p]]);
    expect(predictiveEntropy(samples).dataSync()[0]).toBeCloseTo(H(p), 6);
    expect(expectedEntropy(samples).dataSync()[0]).toBeCloseTo(H(p), 6);
    expect(mutualInformation(samples).dataSync()[0]).toBe(0);
    samples.dispose();
  });

  test('a mixed set, two rows: each quantity equals its formula', () => {
    const passes = [
      [
        [0.9, 0.1],
        [0.5, 0.5],
      ],
      [
        [0.1, 0.9],
        [0.5, 0.5],
      ],
      [
        [0.6, 0.4],
        [0.2, 0.8],
      ],
    ];
    const samples = tf.tensor3d(passes);
    for (let row = 0; row < 2; row++) {
      const rows = passes.map((pass) => pass[row]);
      const mean = [0, 1].map((c) => rows.reduce((s, r) => s + r[c], 0) / rows.length);
      const expected = rows.reduce((s, r) => s + H(r), 0) / rows.length;
      expect(predictiveEntropy(samples).dataSync()[row]).toBeCloseTo(H(mean), 6);
      expect(expectedEntropy(samples).dataSync()[row]).toBeCloseTo(expected, 6);
      expect(mutualInformation(samples).dataSync()[row]).toBeCloseTo(H(mean) - expected, 6);
    }
    samples.dispose();
  });

  test("'binary': Bernoulli entropies per element; p = 0 and 1 give 0", () => {
    // Two passes, elements [p, q]: pass 1 [0, 0.5], pass 2 [1, 0.5].
    const samples = tf.tensor2d([
      [0, 0.5],
      [1, 0.5],
    ]);
    const pred = Array.from(predictiveEntropy(samples, 'binary').dataSync());
    const exp = Array.from(expectedEntropy(samples, 'binary').dataSync());
    const mi = Array.from(mutualInformation(samples, 'binary').dataSync());
    [ln2, ln2].forEach((v, i) => expect(pred[i]).toBeCloseTo(v, 6));
    [0, ln2].forEach((v, i) => expect(exp[i]).toBeCloseTo(v, 6));
    [ln2, 0].forEach((v, i) => expect(mi[i]).toBeCloseTo(v, 6));
    samples.dispose();
  });

  test('a tensor without the pass axis is a clear error', () => {
    const one = tf.tensor1d([0.5, 0.5]);
    expect(() => predictiveEntropy(one)).toThrow(
      /predictiveEntropy: expected samples to be a tensor \[T, …, classes\].*tf\.stack/,
    );
    one.dispose();
  });
});

describe('mcPredict results', () => {
  test('streamed mean, variance and entropies equal those of the kept passes (chunked input)', () => {
    const model = classifier();
    const r = mcPredict(model, x, {
      samples: 25,
      seed: 4,
      batchSize: 4, // 3 chunks of 4, 4 and 2 rows
      keepSamples: true,
      probabilities: 'categorical',
    });
    const stacked = r.samples!;
    expect(stacked.shape).toEqual([25, 10, 3]);
    const m = tf.moments(stacked, 0);
    expect(maxAbsDiff(r.mean, m.mean)).toBeLessThan(1e-6);
    expect(maxAbsDiff(r.variance, m.variance)).toBeLessThan(1e-6);
    const pe = predictiveEntropy(stacked);
    const ee = expectedEntropy(stacked);
    const mi = mutualInformation(stacked);
    expect(maxAbsDiff(r.predictiveEntropy!, pe)).toBeLessThan(1e-5);
    expect(maxAbsDiff(r.expectedEntropy!, ee)).toBeLessThan(1e-5);
    expect(maxAbsDiff(r.mutualInformation!, mi)).toBeLessThan(1e-5);
    expect(tf.tidy(() => tf.min(r.mutualInformation!).dataSync()[0])).toBeGreaterThan(0);
    expect(r.stochasticLayers).toEqual([model.layers[1].name]);
    tf.dispose([m.mean, m.variance, pe, ee, mi]);
    disposeResult(r);
    model.dispose();
  });

  test('the chunk size does not change the result beyond float rounding (rows are independent)', () => {
    // With one chunk the pass t draws one mask for all rows; with chunks, one per chunk: both are
    // valid samples, so only the moments' distribution agrees. Rate 0 makes them equal exactly.
    const model = classifier(0);
    const a = mcPredict(model, x, { samples: 3, batchSize: 32 });
    const b = mcPredict(model, x, { samples: 3, batchSize: 3 });
    const plain = model.predict(x) as tf.Tensor;
    expect(maxAbsDiff(a.mean, plain)).toBe(0);
    expect(maxAbsDiff(b.mean, plain)).toBe(0);
    expect(tf.tidy(() => tf.max(b.variance).dataSync()[0])).toBe(0);
    disposeResult(a);
    disposeResult(b);
    plain.dispose();
    model.dispose();
  });

  test('a pretrained-style model with built-in Dropout and BatchNormalization: MC samples, BN in inference mode, model untouched', () => {
    const model = pretrainedStyle(0.5);
    const before = model.getWeights().map((w) => w.dataSync().slice());
    const r = mcPredict(model, x, { samples: 20, seed: 1 });
    expect(r.stochasticLayers).toEqual(['drop']);
    expect(tf.tidy(() => tf.min(r.variance).dataSync()[0])).toBeGreaterThan(0);
    // Untouched: same classes (built-ins), same weights (BN moving statistics included).
    expect(model.layers.map((l) => l.getClassName())).toEqual([
      'Dense',
      'BatchNormalization',
      'Activation',
      'Dropout',
      'Dense',
    ]);
    model.getWeights().forEach((w, i) => expect(w.dataSync()).toEqual(before[i]));
    disposeResult(r);
    // At rate 0 every pass is predict: BN uses its moving statistics (batch statistics would differ).
    const still = pretrainedStyle(0);
    const r0 = mcPredict(still, x, { samples: 3 });
    const plain = still.predict(x) as tf.Tensor;
    expect(maxAbsDiff(r0.mean, plain)).toBe(0);
    const training = still.apply(x, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(r0.mean, training)).toBeGreaterThan(0.01);
    tf.dispose([plain, training]);
    disposeResult(r0);
    model.dispose();
    still.dispose();
  });

  test('two inputs, two outputs, a nested model: both heads come from the same passes', () => {
    const inner = tf.sequential({
      name: 'trunk',
      layers: [
        tf.layers.dense({ units: 8, inputShape: [6], kernelInitializer: glorot(8) }),
        tf.layers.dropout({ rate: 0.4, name: 'trunk_drop' }),
      ],
    });
    const a = tf.input({ shape: [4] });
    const b = tf.input({ shape: [2] });
    const h = inner.apply(tf.layers.concatenate().apply([a, b])) as tf.SymbolicTensor;
    const head = tf.layers.dense({ units: 1, kernelInitializer: glorot(9), useBias: false });
    const y1 = head.apply(h) as tf.SymbolicTensor;
    // The second head is 2 × the first (a fixed scaling), so within one pass y2 = 2·y1.
    const y2 = tf.layers
      .dense({
        units: 1,
        kernelInitializer: tf.initializers.constant({ value: 2 }),
        useBias: false,
      })
      .apply(y1) as tf.SymbolicTensor;
    const model = tf.model({ inputs: [a, b], outputs: [y1, y2] });
    const xb = tf.randomNormal([10, 2], 0, 1, 'float32', 8);
    const r = mcPredict<tf.Tensor[]>(model, [x, xb], { samples: 15, seed: 2, batchSize: 4 });
    expect(r.stochasticLayers).toEqual(['trunk/trunk_drop']);
    expect(r.mean.map((m) => m.shape)).toEqual([
      [10, 1],
      [10, 1],
    ]);
    const twice = tf.mul(r.mean[0], 2);
    const fourTimes = tf.mul(r.variance[0], 4);
    expect(maxAbsDiff(r.mean[1], twice)).toBeLessThan(1e-5);
    expect(maxAbsDiff(r.variance[1], fourTimes)).toBeLessThan(1e-4);
    expect(tf.tidy(() => tf.min(r.variance[0]).dataSync()[0])).toBeGreaterThan(0);
    tf.dispose([twice, fourTimes, xb]);
    disposeResult(r);
    model.dispose();
  });

  test('no tensor leaks: sync and async, multi-chunk, keepSamples and entropies', async () => {
    const model = classifier();
    disposeResult(mcPredict(model, x, { samples: 2 }));
    const options: McPredictOptions = {
      samples: 4,
      seed: 1,
      batchSize: 3,
      keepSamples: true,
      probabilities: 'categorical',
    };
    const leaked = await leakedTensors(async () => {
      disposeResult(mcPredict(model, x, options));
      disposeResult(await mcPredictAsync(model, x, options));
      const pretrained = pretrainedStyle(0.2);
      disposeResult(mcPredict(pretrained, x, { samples: 3 }));
      pretrained.dispose();
    });
    expect(leaked).toBe(0);
    model.dispose();
  });
});

describe('mcPredictAsync', () => {
  test('returns exactly what mcPredict returns for the same seed', async () => {
    const model = classifier();
    const options: McPredictOptions = {
      samples: 12,
      seed: 9,
      batchSize: 4,
      keepSamples: true,
      probabilities: 'categorical',
    };
    const sync = mcPredict(model, x, options);
    const async_ = await mcPredictAsync(model, x, options);
    for (const key of [
      'mean',
      'variance',
      'samples',
      'predictiveEntropy',
      'expectedEntropy',
      'mutualInformation',
    ] as const) {
      expect(maxAbsDiff(sync[key]!, async_[key]!)).toBe(0);
    }
    const other = await mcPredictAsync(model, x, { ...options, seed: 10 });
    expect(maxAbsDiff(sync.mean, other.mean)).toBeGreaterThan(0);
    [sync, async_, other].forEach(disposeResult);
    model.dispose();
  });

  test('the event loop runs between passes: a timer fires during a long call (not during mcPredict)', async () => {
    const model = classifier();
    const samples = 300;
    let passesSeen = 0;
    const onProgress = (p: McProgress) => {
      passesSeen = p.passesDone;
    };
    let firedAt: number | null = null;
    const timer = setTimeout(() => (firedAt = passesSeen), 1);
    const r = await mcPredictAsync(model, x, { samples, onProgress });
    expect(firedAt).not.toBeNull();
    expect(firedAt!).toBeGreaterThan(0);
    expect(firedAt!).toBeLessThan(samples);
    disposeResult(r);
    // The synchronous form holds the event loop for the whole call.
    firedAt = null;
    passesSeen = 0;
    const timer2 = setTimeout(() => (firedAt = passesSeen), 1);
    disposeResult(mcPredict(model, x, { samples, onProgress }));
    expect(firedAt).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(firedAt).toBe(samples);
    clearTimeout(timer);
    clearTimeout(timer2);
    model.dispose();
  });

  test('between passes the user model is in its own state (predict is deterministic)', async () => {
    const model = classifier();
    const drop = model.layers[1] as Dropout;
    const seen: boolean[] = [];
    const r = await mcPredictAsync(model, x, {
      samples: 3,
      onProgress: () => {
        seen.push(drop.mcActive);
      },
    });
    expect(seen).toEqual([false, false, false]);
    disposeResult(r);
    model.dispose();
  });

  test('onProgress: every pass reported; a throwing callback stops the call, restores and leaks nothing', async () => {
    const model = classifier();
    const reports: McProgress[] = [];
    disposeResult(
      await mcPredictAsync(model, x, {
        samples: 2,
        batchSize: 4,
        onProgress: (p) => {
          reports.push(p);
        },
      }),
    );
    expect(reports.map((p) => [p.samplesDone, p.passesDone])).toEqual([
      [0, 1],
      [0, 2],
      [1, 3],
      [1, 4],
      [1, 5],
      [2, 6],
    ]);
    expect(reports.every((p) => p.passes === 6 && p.samples === 2)).toBe(true);
    const leaked = await leakedTensors(async () => {
      await expect(
        mcPredictAsync(model, x, {
          samples: 5,
          keepSamples: true,
          onProgress: async (p) => {
            if (p.passesDone === 3) throw new Error('stop');
          },
        }),
      ).rejects.toThrow('stop');
      expect(() =>
        mcPredict(model, x, {
          samples: 5,
          onProgress: (p) => {
            if (p.passesDone === 2) throw new Error('stop');
          },
        }),
      ).toThrow('stop');
    });
    expect(leaked).toBe(0);
    expect((model.layers[1] as Dropout).mcActive).toBe(false);
    model.dispose();
  });
});

describe('bounded memory', () => {
  /** Runs `fn` and returns the peak of tf.memory().numBytes above the start, sampled at every new tensor. */
  function peakBytes(fn: () => void): number {
    const engine = tf.engine() as unknown as {
      trackTensor: (...args: unknown[]) => void;
      state: { numBytes: number };
    };
    const original = engine.trackTensor;
    const start = engine.state.numBytes;
    let peak = start;
    // Every allocation goes through trackTensor, which adds its bytes to state.numBytes (what
    // tf.memory().numBytes reports): sampling after each call sees the exact peak.
    engine.trackTensor = function (this: unknown, ...args: unknown[]) {
      original.apply(this, args);
      peak = Math.max(peak, engine.state.numBytes);
    };
    try {
      fn();
    } finally {
      engine.trackTensor = original;
    }
    return peak - start;
  }

  test('samples = 10,000: peak ≤ 2 × one forward pass of a chunk, and flat from pass to pass', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          units: 32,
          inputShape: [4],
          activation: 'relu',
          kernelInitializer: glorot(1),
        }),
        layers.dropout({ rate: 0.2 }),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: glorot(2) }),
      ],
    });
    const batch = x.slice([0, 0], [8, 4]);
    const onePass = peakBytes(() => {
      (model.predict(batch) as tf.Tensor).dispose();
    });
    let mc: ReturnType<typeof mcPredict> | null = null;
    const afterPass: number[] = [];
    const peak = peakBytes(() => {
      mc = mcPredict(model, batch, {
        samples: 10000,
        seed: 3,
        probabilities: 'categorical',
        onProgress: (p) => {
          if (p.passesDone % 1000 === 0) afterPass.push(tf.memory().numBytes);
        },
      });
    });
    expect(onePass).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(2 * onePass);
    expect(afterPass.length).toBe(10);
    expect(new Set(afterPass).size).toBe(1); // nothing accumulates between passes
    if (process.env.PRINT_MC_MEMORY) console.log({ onePass, peak, afterPass: afterPass[0] });
    disposeResult(mc!);
    batch.dispose();
    model.dispose();
  }, 60000);
});

describe('errors', () => {
  test('samples: non-integer, non-positive, absurd (the cap is stated)', () => {
    const model = classifier();
    for (const samples of [0, -3, 2.5, NaN]) {
      expect(() => mcPredict(model, x, { samples })).toThrow(
        new RegExp(
          `mcPredict: expected samples to be a positive integer, received: samples=${samples}`,
        ),
      );
    }
    expect(() => mcPredict(model, x, { samples: '30' as unknown as number })).toThrow(
      /expected samples to be a positive integer, received: samples="30"/,
    );
    expect(MAX_MC_SAMPLES).toBe(1_000_000);
    expect(() => mcPredict(model, x, { samples: 1e9 })).toThrow(
      /expected samples to be at most 1000000 \(MAX_MC_SAMPLES\), received: samples=1000000000/,
    );
    return expect(mcPredictAsync(model, x, { samples: 0 })).rejects.toThrow(
      /mcPredictAsync: expected samples to be a positive integer/,
    );
  });

  test('unknown options, wrong inputs, outputs that are not the probabilities claimed', () => {
    const model = classifier();
    expect(() => mcPredict(model, x, { sample: 10 } as unknown as McPredictOptions)).toThrow(
      /unknown option 'sample' \(did you mean 'samples'\?\)/,
    );
    expect(() => mcPredict(model, [x, x])).toThrow(
      /expected x to be one tensor \(the model has one input\)/,
    );
    const wrong = tf.zeros([3, 5]);
    expect(() => mcPredict(model, wrong)).toThrow(
      /expected the shape of input 0 .* to match the model input \[null,4\], received: .*=\[3,5\]/,
    );
    wrong.dispose();
    const regression = pretrainedStyle(0.3);
    expect(() => mcPredict(regression, x, { probabilities: 'categorical' })).toThrow(
      /expected probabilities to describe output 0 .*End the model with a softmax/,
    );
    expect(() => mcPredict(model, x, { probabilities: 'softmax' as 'binary' })).toThrow(
      /expected probabilities to be 'categorical', 'binary' or omitted/,
    );
    regression.dispose();
    model.dispose();
  });

  test('a model without any dropout layer: the error says what to add', () => {
    const plain = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [4] })] });
    expect(() => mcPredict(plain, x)).toThrow(
      /expected dropout layers in the model to exist .*received: dropout layers in the model="none".*layers\.dropout/,
    );
    plain.dispose();
  });
});

describe('mcDropout: always stochastic at inference', () => {
  function flagged(): tf.Sequential {
    return tf.sequential({
      layers: [
        tf.layers.dense({ units: 16, inputShape: [4], kernelInitializer: glorot(1) }),
        layers.dropout({ rate: 0.5, name: 'always', mcDropout: true }),
        layers.dropout({ rate: 0.5, name: 'train_only' }),
        tf.layers.dense({ units: 2, kernelInitializer: glorot(2) }),
      ],
    });
  }

  test('plain predict draws noise in the flagged layer only', () => {
    const model = flagged();
    const [a, b] = [model.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor];
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0);
    const always = model.getLayer('always');
    const trainOnly = model.getLayer('train_only');
    const ones = tf.ones([2, 50]);
    const y = always.apply(ones) as tf.Tensor;
    const z = trainOnly.apply(ones) as tf.Tensor;
    expect(tf.tidy(() => tf.sum(tf.equal(y, 0)).dataSync()[0])).toBeGreaterThan(0);
    expect(maxAbsDiff(z, ones)).toBe(0);
    tf.dispose([a, b, ones, y, z]);
    model.dispose();
  });

  test('saved in the config and through a model JSON round trip', async () => {
    const model = flagged();
    expect(model.getLayer('always').getConfig().mcDropout).toBe(true);
    expect(model.getLayer('train_only').getConfig().mcDropout).toBe(false);
    const artifacts = await new Promise<tf.io.ModelArtifacts>((resolve) => {
      void model.save(
        tf.io.withSaveHandler(async (a) => {
          resolve(a);
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
    });
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    expect((loaded.getLayer('always') as Dropout).mcDropout).toBe(true);
    expect((loaded.getLayer('train_only') as Dropout).mcDropout).toBe(false);
    loaded.dispose();
    model.dispose();
  });

  test('mcPredict samples the flagged layers only: the distribution of repeated predict', () => {
    const model = flagged();
    const r = mcPredict(model, x, { samples: 5, seed: 2 });
    expect(r.stochasticLayers).toEqual(['always']);
    // Replay with the second layer off: the same seeded stream gives the same passes.
    const single = tf.sequential({
      layers: [
        tf.layers.dense({ units: 16, inputShape: [4], kernelInitializer: glorot(1) }),
        layers.dropout({ rate: 0.5, mcDropout: true }),
        tf.layers.dense({ units: 2, kernelInitializer: glorot(2) }),
      ],
    });
    const s = mcPredict(single, x, { samples: 5, seed: 2 });
    expect(maxAbsDiff(r.mean, s.mean)).toBe(0);
    disposeResult(r);
    disposeResult(s);
    model.dispose();
    single.dispose();
  });

  test('validated like the other arguments; settable on a loaded model', () => {
    expect(() => layers.dropout({ rate: 0.1, mcDropout: 'yes' as unknown as boolean })).toThrow(
      /expected mcDropout to be true or false, received: mcDropout="yes"/,
    );
    const drop = layers.gaussianDropout({ rate: 0.3 });
    drop.mcDropout = true;
    const ones = tf.ones([4, 8]);
    const y = drop.apply(ones) as tf.Tensor;
    expect(maxAbsDiff(y, ones)).toBeGreaterThan(0);
    tf.dispose([ones, y]);
  });
});
