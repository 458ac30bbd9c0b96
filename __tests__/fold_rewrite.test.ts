import * as tf from '@tensorflow/tfjs';
import { foldBatchNorm, layers as dn, modelGraph, rewriteModel } from 'tfjs-dropnorm';
import { leakedTensors } from './helpers';
import { predict, randn, randomizeBatchNorms } from './fold_helpers';

describe('rewriteModel (the graph-rewrite helper under every transform)', () => {
  function siamese(): tf.LayersModel {
    const a = tf.input({ shape: [3], name: 'left' });
    const b = tf.input({ shape: [3], name: 'right' });
    const shared = tf.layers.dense({ units: 4, name: 'shared' });
    const ha = shared.apply(a) as tf.SymbolicTensor;
    const hb = shared.apply(b) as tf.SymbolicTensor;
    const out = tf.layers.concatenate().apply([ha, hb]) as tf.SymbolicTensor;
    return tf.model({ inputs: [a, b], outputs: [out, ha] });
  }

  it('clones with new layer objects and copied weights; a shared layer stays shared', () => {
    const model = siamese();
    const xs = [randn([2, 3], 1), randn([2, 3], 2)];
    const clone = rewriteModel(model);
    const [y0, y1] = model.predict(xs) as tf.Tensor[];
    const [c0, c1] = clone.predict(xs) as tf.Tensor[];
    expect(c0.dataSync()).toEqual(y0.dataSync());
    expect(c1.dataSync()).toEqual(y1.dataSync());
    expect(clone.inputNames).toEqual(['left', 'right']);
    const dense = clone.layers.filter((l) => l.getClassName() === 'Dense');
    expect(dense.length).toBe(1);
    expect(dense[0]).not.toBe(model.getLayer('shared'));
    expect(modelGraph(clone).nodesOf(dense[0]).length).toBe(2);
    // Independent weights: zeroing the clone's kernel leaves the original alone.
    dense[0].setWeights(dense[0].getWeights().map((w) => tf.zerosLike(w)));
    expect((model.predict(xs) as tf.Tensor[])[1].dataSync()).toEqual(y1.dataSync());
  });

  it('replaces and removes layers', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 4, name: 'd1' }),
        tf.layers.activation({ activation: 'relu', name: 'act' }),
        tf.layers.dense({ units: 2, name: 'd2' }),
      ],
    });
    const x = randn([5, 3], 3);
    const subs = new Map([
      [model.getLayer('act'), { remove: true as const }],
      [
        model.getLayer('d2'),
        {
          replace: {
            className: 'Dense',
            config: { ...model.getLayer('d2').getConfig(), activation: 'tanh' },
          },
        },
      ],
    ]);
    const out = rewriteModel(model, subs);
    expect(out.layers.slice(1).map((l) => l.name)).toEqual(['d1', 'd2']);
    expect(out.layers.map((l) => l.getClassName())).toEqual(['InputLayer', 'Dense', 'Dense']);
    const [w1, b1, w2, b2] = model.getWeights();
    const expected = tf.tanh(tf.add(tf.matMul(tf.add(tf.matMul(x, w1), b1), w2), b2));
    expect(
      Math.max(...Array.from(tf.abs(tf.sub(predict(out, x), expected)).dataSync())),
    ).toBeLessThan(1e-6);
    expect(model.layers.length).toBe(3);
  });

  it('foldBatchNorm leaks no tensors beyond the new model weights', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [5, 5, 2], filters: 3, kernelSize: 3 }),
        dn.batchNorm(),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2 }),
        tf.layers.batchNormalization(),
      ],
    });
    randomizeBatchNorms(model, 4);
    let created = 0;
    const leaked = await leakedTensors(() => {
      created = foldBatchNorm(model, { fuseActivations: true }).model.weights.length;
    });
    expect(leaked).toBe(created);
  });
});
