/**
 * GroupNorm and InstanceNorm (issue 22): Keras 3's published expectations, Keras's and PyTorch's
 * error cases, outputs and gradients against float64 references and tf.grad of a composite
 * reference (including inputs far from zero), channels-first, ranks 2–5, masks, no leaks.
 */
import * as tf from '@tensorflow/tfjs';
import {
  AddonsGroupNormalization,
  DropnormValueError,
  GroupNorm,
  InstanceNorm,
  layers,
  ops,
} from 'tfjs-dropnorm';
import { leakedTensors, maxAbsDiff } from './helpers';
import { groupNorm64, relativeError } from './norms_reference';

const apply = (layer: tf.layers.Layer, x: tf.Tensor, training = false) =>
  layer.apply(x, { training }) as tf.Tensor;

/** The composite reference: Keras 3's `_apply_normalization` written with tf ops (autodiff). */
function compositeGroupNorm(
  x: tf.Tensor,
  gamma: tf.Tensor | null,
  beta: tf.Tensor | null,
  axis: number,
  groups: number,
  epsilon: number,
): tf.Tensor {
  const shape = [...x.shape];
  const grouped = [...shape];
  grouped.splice(axis, 1, groups, shape[axis] / groups);
  const xv = tf.reshape(x, grouped);
  const axes = grouped.map((_, a) => a).filter((a) => a !== 0 && a !== axis);
  const { mean, variance } = tf.moments(xv, axes, true);
  let y = tf.reshape(tf.div(tf.sub(xv, mean), tf.sqrt(tf.add(variance, epsilon))), shape);
  const cs = shape.map((d, a) => (a === axis ? d : 1));
  if (gamma) y = tf.mul(y, tf.reshape(gamma, cs));
  if (beta) y = tf.add(y, tf.reshape(beta, cs));
  return y;
}

describe("GroupNorm: Keras 3's published expectations", () => {
  // keras/src/layers/normalization/group_normalization_test.py, test_correctness_1d.
  it('1-d: 1 group (layer norm) and 2 groups along axis 1', () => {
    const x = tf.tensor([[-1, -1, 1, 1, 2, 2, 0, -2]]);
    const one = apply(layers.groupNorm({ groups: 1, axis: -1, scale: false, center: false }), x);
    const two = apply(layers.groupNorm({ groups: 2, axis: 1, scale: false, center: false }), x);
    expect(
      maxAbsDiff(one, tf.tensor([[-0.898, -0.898, 0.539, 0.539, 1.257, 1.257, -0.18, -1.616]])),
    ).toBeLessThan(1e-3);
    expect(maxAbsDiff(two, tf.tensor([[-1, -1, 1, 1, 0.904, 0.904, -0.301, -1.507]]))).toBeLessThan(
      1e-3,
    );
  });

  // group_normalization_test.py, test_correctness_2d.
  it('2-d: 1 group and 2 groups along axis 2', () => {
    const x = tf.tensor([
      [
        [-1, -1, 2, 2],
        [1, 1, 0, -2],
      ],
    ]);
    const one = apply(layers.groupNorm({ groups: 1, axis: -1, scale: false, center: false }), x);
    const two = apply(layers.groupNorm({ groups: 2, axis: 2, scale: false, center: false }), x);
    expect(
      maxAbsDiff(
        one,
        tf.tensor([
          [
            [-0.898, -0.898, 1.257, 1.257],
            [0.539, 0.539, -0.18, -1.616],
          ],
        ]),
      ),
    ).toBeLessThan(1e-3);
    expect(
      maxAbsDiff(
        two,
        tf.tensor([
          [
            [-1, -1, 0.904, 0.904],
            [1, 1, -0.301, -1.507],
          ],
        ]),
      ),
    ).toBeLessThan(1e-3);
  });

  // group_normalization_test.py, test_correctness_instance_norm and test_groups_instance_norm.
  it('instance norm: groups 4 of 4 channels, and groups -1 gives the same', () => {
    const x = tf.tensor([
      [
        [-1, 1, 0, 2],
        [1, 3, -4, -2],
      ],
    ]);
    const four = apply(layers.groupNorm({ groups: 4, scale: false, center: false }), x);
    const minusOne = apply(layers.groupNorm({ groups: -1, scale: false, center: false }), x);
    const instance = apply(layers.instanceNorm({ scale: false, center: false }), x);
    expect(
      maxAbsDiff(
        four,
        tf.tensor([
          [
            [-1, -1, 1, 1],
            [1, 1, -1, -1],
          ],
        ]),
      ),
    ).toBeLessThan(1e-3);
    expect(maxAbsDiff(minusOne, four)).toBe(0);
    expect(maxAbsDiff(instance, four)).toBe(0);
  });

  // group_normalization_test.py, test_broadcasting_2d_channels_first.
  it('channels-first 2-d: arange(16) as [1, 4, 2, 2], 2 groups along axis 1', () => {
    const x = tf.reshape(tf.range(0, 16), [1, 4, 2, 2]);
    const y = apply(layers.groupNorm({ groups: 2, axis: 1 }), x);
    const half = [
      [
        [-1.5274, -1.091],
        [-0.6546, -0.2182],
      ],
      [
        [0.2182, 0.6546],
        [1.091, 1.5274],
      ],
    ];
    expect(maxAbsDiff(y, tf.tensor([[...half, ...half]]))).toBeLessThan(1e-3);
  });

  // group_normalization_test.py, test_groupnorm: weights and losses of run_layer_test.
  it('two trainable weights gamma, beta [C]; one loss per regularizer; none with center/scale off', () => {
    const layer = layers.groupNorm({ gammaRegularizer: 'l1l2', betaRegularizer: 'l1l2' });
    layer.apply(tf.input({ shape: [4, 32] }));
    expect(layer.trainableWeights.map((w) => [w.originalName, w.shape])).toEqual([
      [`${layer.name}/gamma`, [32]],
      [`${layer.name}/beta`, [32]],
    ]);
    expect(layer.nonTrainableWeights).toHaveLength(0);
    expect(layer.losses).toHaveLength(2);
    const bare = layers.groupNorm({ groups: 4, center: false, scale: false });
    bare.build([null, 4, 4]);
    expect(bare.weights).toHaveLength(0);
  });
});

describe("GroupNorm errors (Keras 3's and PyTorch's cases)", () => {
  const owner = (name: string) => new RegExp(`^GroupNorm '${name}': expected `);

  // group_normalization_test.py, test_groups_rejects_invalid_values: 0, -2, 1.5, "32".
  it.each([0, -2, 1.5, '32', null as unknown as number, NaN])(
    'groups=%p is rejected at construction',
    (bad) => {
      if (bad === null) return; // null means the default, as every optional argument
      const make = () => layers.groupNorm({ name: 'g_bad', groups: bad as number });
      expect(make).toThrow(DropnormValueError);
      expect(make).toThrow(owner('g_bad'));
      expect(make).toThrow(
        /expected groups to be a positive integer, or -1 for instance normalization/,
      );
      expect(make).toThrow(
        `received: groups=${typeof bad === 'string' ? `"${bad}"` : String(bad)}.`,
      );
    },
  );

  // test_groups_bigger_than_dim_error: 5 groups for 4 channels.
  it('more groups than channels', () => {
    const layer = layers.groupNorm({ name: 'g5', groups: 5 });
    expect(() => apply(layer, tf.ones([2, 2, 2, 4]))).toThrow(
      "GroupNorm 'g5': expected groups to be at most the number of channels (4, input shape [2,2,2,4]), received: groups=5. Use a divisor of 4: 1, 2, 4.",
    );
  });

  // test_groups_not_a_multiple_of_dim_error (3 groups, 4 channels); PyTorch's
  // "num_channels must be divisible by num_groups".
  it('a channel count the groups do not divide', () => {
    const layer = layers.groupNorm({ name: 'g3', groups: 3 });
    expect(() => apply(layer, tf.ones([2, 2, 2, 4]))).toThrow(
      /^GroupNorm 'g3': expected groups to divide the number of channels \(4, input shape \[2,2,2,4\]\) evenly, received: groups=3\. Use a divisor of 4: 1, 2, 4\.$/,
    );
    expect(() =>
      layers.groupNorm({ groups: 4, axis: 1 }).apply(tf.input({ shape: [6, 3] })),
    ).toThrow(/divide the number of channels \(6.*Use a divisor of 6: 1, 2, 3, 6\./);
  });

  // test_undefined_dim_error: Input(shape=(2, 2, 2, None)).
  it('an undefined channel dimension', () => {
    const layer = layers.groupNorm({ name: 'g_none' });
    expect(() => layer.apply(tf.input({ shape: [2, 2, 2, null as unknown as number] }))).toThrow(
      /^GroupNorm 'g_none': expected input shape\[4\] \(the channel dimension of axis -1\) to be defined, received: .*=null\. Received input shape \[null,2,2,2,null\]/,
    );
  });

  // PyTorch test_nn.py, test_GroupNorm_raises_error_if_one_value_per_group: x [1, 10, 1],
  // GroupNorm(10, 10) (channels-first).
  it('one value per group (PyTorch): the output would be β whatever the input', () => {
    const x = tf.randomUniform([1, 10, 1]);
    expect(() => apply(layers.groupNorm({ name: 'one', groups: 10, axis: 1 }), x)).toThrow(
      /^GroupNorm 'one': expected values per group to be more than 1 \(input shape \[1,10,1\] with 10 group\(s\) of 1 channel\(s\)/,
    );
    // Rank 2, instance norm: one value per channel and sample.
    expect(() => layers.instanceNorm().apply(tf.input({ shape: [8] }))).toThrow(/values per group/);
    // With a free time axis the check waits for the call, where the shape is known.
    const seq = layers.groupNorm({ groups: 4 });
    seq.apply(tf.input({ shape: [null as unknown as number, 4] }));
    expect(() => apply(seq, tf.ones([2, 1, 4]))).toThrow(/values per group/);
    expect(() => apply(seq, tf.ones([2, 3, 4])).dispose()).not.toThrow();
  });

  it('the batch axis, an axis out of range, rank 1 and bad epsilon / center types', () => {
    expect(() => layers.groupNorm({ name: 'ax0', axis: 0 })).toThrow(
      /^GroupNorm 'ax0': expected axis not to be the batch axis 0 \(the statistics are per sample\), received: axis=0\./,
    );
    expect(() => layers.groupNorm({ axis: 3, groups: 1 }).apply(tf.input({ shape: [4] }))).toThrow(
      /expected axis in \[-1, 2\) and not the batch axis, for an input of rank 2/,
    );
    expect(() => layers.groupNorm({ axis: -2, groups: 1 }).apply(tf.input({ shape: [4] }))).toThrow(
      /expected axis in \[-1, 2\)/,
    );
    expect(() => layers.groupNorm({ axis: 1.5 })).toThrow(/expected axis to be an integer/);
    expect(() => layers.groupNorm({ epsilon: 0 })).toThrow(
      /expected epsilon to be a finite number > 0, received: epsilon=0/,
    );
    expect(() => layers.groupNorm({ epsilon: '1e-3' as never })).toThrow(
      /received: epsilon="1e-3"/,
    );
    expect(() => layers.groupNorm({ center: 'yes' as never })).toThrow(
      /expected center to be true or false/,
    );
    expect(() => layers.groupNorm({ gammaInitializer: 'onez' })).toThrow(
      /gammaInitializer.*Did you mean 'ones'\?/,
    );
  });

  it('InstanceNorm accepts groups -1 or the channel count (what TF Addons writes), nothing else', () => {
    expect(() =>
      apply(layers.instanceNorm({ groups: 4 }), tf.ones([1, 3, 4])).dispose(),
    ).not.toThrow();
    expect(() =>
      apply(layers.instanceNorm({ name: 'in2', groups: 2 }), tf.ones([1, 3, 4])),
    ).toThrow(
      "InstanceNorm 'in2': expected groups to be -1 or the number of channels (4): instance norm has one group per channel, received: groups=2. Leave groups out, or use groupNorm for fewer groups.",
    );
  });

  it('a failed build leaves no weights and no tensors', async () => {
    const layer = layers.groupNorm({ groups: 3 });
    const leaked = await leakedTensors(() => {
      expect(() => apply(layer, tf.ones([2, 4]))).toThrow(DropnormValueError);
    });
    // tf.ones above is the one tensor the test itself made.
    expect(leaked).toBeLessThanOrEqual(1);
    expect(layer.weights).toHaveLength(0);
  });
});

/** [name, shape, axis, groups] for every rank 2–5, both layouts. */
const CASES: Array<[string, number[], number, number]> = [
  ['rank 2, [4, 12], 3 groups', [4, 12], 1, 3],
  ['rank 3 channels-last, [3, 5, 6], 2 groups', [3, 5, 6], 2, 2],
  ['rank 3 channels-first, [3, 6, 5], 3 groups', [3, 6, 5], 1, 3],
  ['rank 4 channels-last, [2, 4, 3, 8], 4 groups', [2, 4, 3, 8], 3, 4],
  ['rank 4 channels-first, [2, 8, 4, 3], 2 groups', [2, 8, 4, 3], 1, 2],
  ['rank 4 middle axis, [2, 3, 6, 4], 3 groups', [2, 3, 6, 4], 2, 3],
  ['rank 5 channels-last, [2, 2, 3, 2, 6], 6 groups (instance)', [2, 2, 3, 2, 6], 4, 6],
  ['rank 5 channels-first, [2, 4, 2, 3, 2], 1 group (layer)', [2, 4, 2, 3, 2], 1, 1],
];

describe('GroupNorm against float64 and the composite reference', () => {
  describe.each(CASES)('%s', (_, shape, axis, groups) => {
    const channels = shape[axis];
    const x = tf.randomNormal(shape, 0.5, 2, 'float32', 11);
    const dy = tf.randomNormal(shape, 0, 1, 'float32', 12);
    const gamma = tf.randomNormal([channels], 1, 0.5, 'float32', 13);
    const beta = tf.randomNormal([channels], 0, 1, 'float32', 14);
    const eps = 1e-3;
    const ref = groupNorm64(
      x.dataSync(),
      shape,
      axis,
      groups,
      gamma.dataSync(),
      beta.dataSync(),
      eps,
      dy.dataSync(),
    );

    it('the layer (axis given negative when channels-last) equals float64', () => {
      const layer = layers.groupNorm({
        groups,
        axis: axis === shape.length - 1 ? -1 : axis,
      });
      layer.build(shape);
      layer.setWeights([gamma, beta]);
      const yTrain = apply(layer, x, true);
      const yInfer = apply(layer, x, false);
      expect(relativeError(yTrain.dataSync(), ref.y)).toBeLessThan(1e-5);
      // No batch statistics and no state: training and inference are the same computation.
      expect(maxAbsDiff(yTrain, yInfer)).toBe(0);
    });

    it('gradients to x, γ, β equal tf.grad of the composite and float64', () => {
      const f = (fn: typeof ops.groupNorm) =>
        tf.grads((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(fn(xi, g, b, axis, groups, eps), dy)),
        )([x, gamma, beta]);
      const fused = f(ops.groupNorm);
      const composite = f(compositeGroupNorm);
      const f64 = [ref.dx, ref.dGamma, ref.dBeta];
      for (let k = 0; k < 3; k++) {
        expect(relativeError(fused[k].dataSync(), composite[k].dataSync())).toBeLessThan(1e-4);
        expect(relativeError(fused[k].dataSync(), f64[k])).toBeLessThan(1e-5);
      }
      tf.dispose([...fused, ...composite]);
    });
  });

  it('scale and center off: the gradient to x alone, against float64', () => {
    const shape = [3, 4, 4, 6];
    const x = tf.randomNormal(shape, -1, 3, 'float32', 21);
    const dy = tf.randomNormal(shape, 0, 1, 'float32', 22);
    const layer = layers.groupNorm({ groups: 3, center: false, scale: false });
    const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(apply(layer, xi, true), dy)))(x);
    const ref = groupNorm64(x.dataSync(), shape, 3, 3, null, null, 1e-3, dy.dataSync());
    expect(relativeError(dx.dataSync(), ref.dx)).toBeLessThan(1e-5);
  });
});

describe('GroupNorm far from zero (mean 300 ± 0.1): the centred backward', () => {
  const shape = [4, 6, 5, 8];
  const x = tf.randomNormal(shape, 300, 0.1, 'float32', 31);
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 32);
  const gamma = tf.randomNormal([8], 1, 0.3, 'float32', 33);
  const beta = tf.zeros([8]);
  const ref = groupNorm64(x.dataSync(), shape, 3, 4, gamma.dataSync(), null, 1e-3, dy.dataSync());

  it('dx equals float64 within float32 input rounding, and Σ dx = 0 per sample and group', () => {
    const dx = tf.grad((xi: tf.Tensor) =>
      tf.sum(tf.mul(ops.groupNorm(xi, gamma, beta, 3, 4, 1e-3), dy)),
    )(x);
    // x̂ carries the rounding of x − μ at |x| = 300 (ulp 3e-5 against σ = 0.1): 1e-3 relative.
    expect(relativeError(dx.dataSync(), ref.dx)).toBeLessThan(2e-3);
    const sums = tf.sum(tf.reshape(dx, [4, 30, 4, 2]), [1, 3]);
    const scale = tf.max(tf.abs(dx)).dataSync()[0];
    // Σ over 60 elements of size ~scale: rounding alone is ~1e-6·scale.
    expect(tf.max(tf.abs(sums)).dataSync()[0] / scale).toBeLessThan(1e-5);
    tf.dispose([dx, sums]);
  });

  it('the uncentred textbook form would not keep Σ dx = 0 here (the test can fail)', () => {
    // dx = (g − ḡ − x̂·mean(g·x̂))/σ with the rounded x̂, whose mean is not 0.
    const sums = tf.tidy(() => {
      const xv = tf.reshape(x, [4, 30, 4, 2]);
      const { mean, variance } = tf.moments(xv, [1, 3], true);
      const inv = tf.rsqrt(tf.add(variance, 1e-3));
      const xHat = tf.mul(tf.sub(xv, mean), inv);
      const g = tf.mul(tf.reshape(dy, [4, 30, 4, 2]), tf.reshape(gamma, [1, 1, 4, 2]));
      const dx = tf.mul(
        tf.sub(
          tf.sub(g, tf.mean(g, [1, 3], true)),
          tf.mul(xHat, tf.mean(tf.mul(g, xHat), [1, 3], true)),
        ),
        inv,
      );
      return tf.div(tf.max(tf.abs(tf.sum(dx, [1, 3]))), tf.max(tf.abs(dx)));
    });
    const textbook = sums.dataSync()[0];
    sums.dispose();
    const centred = tf.tidy(() => {
      const dx = tf.grad((xi: tf.Tensor) =>
        tf.sum(tf.mul(ops.groupNorm(xi, gamma, beta, 3, 4, 1e-3), dy)),
      )(x);
      return tf.div(
        tf.max(tf.abs(tf.sum(tf.reshape(dx, [4, 30, 4, 2]), [1, 3]))),
        tf.max(tf.abs(dx)),
      );
    });
    const ours = centred.dataSync()[0];
    centred.dispose();
    expect(ours).toBeLessThan(textbook);
  });
});

describe('GroupNorm: masks, batch independence, leaks', () => {
  it('passes a mask through untouched and ignores it in the statistics, as Keras 3', () => {
    const input = tf.input({ shape: [5, 4] });
    const masked = tf.layers.masking({ maskValue: 0 }).apply(input) as tf.SymbolicTensor;
    const gn = layers.groupNorm({ groups: 2 });
    const out = gn.apply(masked) as tf.SymbolicTensor;
    const lstm = tf.layers.lstm({
      units: 2,
      kernelInitializer: 'ones',
      recurrentInitializer: 'ones',
    });
    const model = tf.model({ inputs: input, outputs: lstm.apply(out) as tf.SymbolicTensor });
    const x = tf.concat([tf.randomNormal([2, 3, 4], 0, 1, 'float32', 41), tf.zeros([2, 2, 4])], 1);
    const mask = tf.any(tf.notEqual(x, 0), -1);
    expect(gn.computeMask(x, mask)).toBe(mask);
    // The statistics include the padded steps (Keras 3's call takes no mask).
    const alone = apply(layers.groupNorm({ groups: 2 }), x);
    const ref = groupNorm64(x.dataSync(), [2, 5, 4], 2, 2, null, null, 1e-3);
    expect(relativeError(alone.dataSync(), ref.y)).toBeLessThan(1e-5);
    expect(() => (model.predict(x) as tf.Tensor).dispose()).not.toThrow();
  });

  it("a sample's output does not depend on the rest of the batch", () => {
    const x = tf.randomNormal([6, 4, 4, 8], 1, 2, 'float32', 51);
    const layer = layers.groupNorm({ groups: 4 });
    const all = apply(layer, x, true);
    const first = apply(layer, tf.slice(x, 0, 1), true);
    expect(maxAbsDiff(tf.slice(all, 0, 1), first)).toBeLessThan(1e-6);
  });

  it('leaks no tensor in forward and gradient loops', async () => {
    const layer = layers.groupNorm({ groups: 2, axis: 1 });
    const x = tf.randomNormal([2, 4, 3, 3], 0, 1, 'float32', 61);
    apply(layer, x).dispose();
    const leaked = await leakedTensors(() => {
      for (let i = 0; i < 3; i++) {
        apply(layer, x, true).dispose();
        const { value, grads } = tf.variableGrads(() => tf.sum(apply(layer, x, true)) as tf.Scalar);
        tf.dispose([value, ...Object.values(grads)]);
        tf.grad((xi: tf.Tensor) => tf.sum(tf.square(apply(layer, xi, true))))(x).dispose();
      }
    });
    expect(leaked).toBe(0);
  });

  it('classes: GroupNorm and InstanceNorm, with the Keras 3 / Addons serialization names', () => {
    expect(layers.groupNorm()).toBeInstanceOf(GroupNorm);
    expect(layers.instanceNorm()).toBeInstanceOf(InstanceNorm);
    expect(layers.instanceNorm()).toBeInstanceOf(GroupNorm);
    expect(GroupNorm.className).toBe('GroupNormalization');
    expect(InstanceNorm.className).toBe('Addons>InstanceNormalization');
    expect(layers.groupNorm().getConfig()).toMatchObject({
      groups: 32,
      axis: -1,
      epsilon: 1e-3,
      center: true,
      scale: true,
    });
    expect(layers.instanceNorm().getConfig()).toMatchObject({ groups: -1 });
  });
});

describe('default names', () => {
  it('the Addons-named classes get valid, distinct default names', () => {
    const a = new AddonsGroupNormalization({ groups: 2 });
    const b = layers.instanceNorm();
    const c = layers.groupNorm({ groups: 2 });
    expect(a.name).toMatch(/^addons_group_normalization_\d+$/);
    expect(b.name).toMatch(/^addons_instance_normalization_\d+$/);
    expect(c.name).toMatch(/^group_normalization/);
    // All three in one model: the weights get valid names and the names do not collide.
    const input = tf.input({ shape: [3, 4] });
    const out = c.apply(b.apply(a.apply(input))) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    expect(new Set(model.weights.map((w) => w.name)).size).toBe(6);
    expect(new AddonsGroupNormalization().groups).toBe(2); // Addons' default
  });
});
