// The training side of the overfitting experiment, in-process on the cpu backend with a tiny MLP:
// every configuration starts from the same weights, and a (seed, configuration) run is reproducible.
import * as tf from '@tensorflow/tfjs';
import {
  buildModel,
  CONFIGS,
  copyInitialWeights,
  initialWeights,
} from '../experiments/overfitting/configs';
import { epochOrders } from '../experiments/lib/training';
import { runTask, SeedCache, TaskOptions } from '../experiments/overfitting/train';
import { maxAbsDiff } from './helpers';

const OPTIONS: TaskOptions = {
  hidden: 8,
  rate: 0.5,
  l2: 5e-4,
  learningRate: 1e-3,
  epochs: 2,
  batchSize: 16,
  trainSize: 50,
  heldOutSize: 100,
  validationSize: 100,
  mcSamples: 3,
  mcConfig: 'dropout',
};

describe('overfitting experiment', () => {
  it('gives every configuration the same initial Dense weights', () => {
    const initial = initialWeights(OPTIONS, 3);
    const x = tf.randomUniform([4, 784], 0, 1, 'float32', 1);
    const predict = (id: string) => {
      const model = buildModel(id, OPTIONS, 3);
      copyInitialWeights(model, initial);
      const y = model.predict(x) as tf.Tensor;
      model.dispose();
      return y;
    };
    const baseline = predict('none');
    // At inference these configurations compute the baseline's function; BatchNorm with its
    // initial statistics divides by √(1 + ε), classic dropout multiplies by 1 − rate.
    for (const id of ['tfjs-dropout', 'dropout', 'gaussian-dropout', 'dropconnect', 'l2']) {
      const y = predict(id);
      expect(maxAbsDiff(y, baseline)).toBeLessThan(1e-6);
      y.dispose();
    }
    for (const id of ['batchnorm', 'batchnorm-dropout']) {
      const y = predict(id);
      expect(maxAbsDiff(y, baseline)).toBeLessThan(1e-2);
      y.dispose();
    }
    tf.dispose([x, baseline, ...initial.flat()]);
  });

  it('builds all nine configurations', () => {
    expect(CONFIGS.map((c) => c.id)).toHaveLength(9);
    const initial = initialWeights(OPTIONS, 1);
    for (const { id } of CONFIGS) {
      const model = buildModel(id, OPTIONS, 1);
      expect(() => copyInitialWeights(model, initial)).not.toThrow();
      model.dispose();
    }
    tf.dispose(initial.flat());
  });

  it('visits the training set in one seeded permutation per epoch', () => {
    const a = epochOrders(20, 3, 5);
    expect(a.map((o) => Array.from(o))).toEqual(epochOrders(20, 3, 5).map((o) => Array.from(o)));
    for (const order of a) expect([...order].sort((p, q) => p - q)).toEqual([...Array(20).keys()]);
    expect(Array.from(a[0])).not.toEqual(Array.from(a[1]));
  });

  it('reproduces a run bit for bit, Monte-Carlo dropout included, and leaks no tensor', async () => {
    const cache = new SeedCache(OPTIONS);
    try {
      const first = await runTask(cache, OPTIONS, 2, 'dropout');
      const again = await runTask(cache, OPTIONS, 2, 'dropout');
      expect(again.run.curve).toEqual(first.run.curve);
      expect(again.mc?.entropy).toEqual(first.mc?.entropy);
      expect(first.leaked).toBe(0);
      const builtin1 = await runTask(cache, OPTIONS, 2, 'tfjs-dropout');
      const builtin2 = await runTask(cache, OPTIONS, 2, 'tfjs-dropout');
      expect(builtin2.run.curve).toEqual(builtin1.run.curve);
      expect(builtin1.run.curve).toHaveLength(OPTIONS.epochs);
    } finally {
      cache.dispose();
    }
  }, 60_000);
});
