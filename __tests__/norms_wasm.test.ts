// GroupNorm, InstanceNorm and RMSNorm on the wasm backend (issue 22): the outputs and the fused
// gradients (to x and to every weight) agree with cpu's on every code path, and a gradient step
// leaks no tensor.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { layers } from 'tfjs-dropnorm';
import { leakedTensors, withoutLeakCheck } from './helpers';

const CASES: [string, () => tf.layers.Layer, number[]][] = [
  ['groupNorm channels-last', () => layers.groupNorm({ groups: 4 }), [3, 5, 4, 8]],
  ['groupNorm channels-first', () => layers.groupNorm({ groups: 2, axis: 1 }), [3, 8, 4, 5]],
  ['groupNorm rank 2', () => layers.groupNorm({ groups: 3 }), [4, 12]],
  ['groupNorm middle axis', () => layers.groupNorm({ groups: 3, axis: 2 }), [2, 4, 6, 5]],
  ['instanceNorm', () => layers.instanceNorm(), [3, 6, 6, 4]],
  ['rmsNorm', () => layers.rmsNorm(), [4, 5, 16]],
  ['rmsNorm axis [1, 2]', () => layers.rmsNorm({ axis: [1, 2] }), [4, 5, 16]],
];

/** Output, dx and every weight's gradient of one seeded layer, as plain arrays. */
function run(make: () => tf.layers.Layer, shape: number[]): number[][] {
  const layer = make();
  layer.build(shape);
  // Non-trivial weights, the same on both backends.
  layer.setWeights(
    layer.weights.map((w, k) => tf.randomNormal(w.shape as number[], 1, 0.3, 'float32', 50 + k)),
  );
  const x = tf.randomNormal(shape, 2, 3, 'float32', 42);
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 43);
  const y = layer.apply(x, { training: true }) as tf.Tensor;
  const dx = tf.grad((xi: tf.Tensor) =>
    tf.sum(tf.mul(layer.apply(xi, { training: true }) as tf.Tensor, dy)),
  )(x);
  const { value, grads } = tf.variableGrads(
    () => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, dy)) as tf.Scalar,
    layer.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val),
  );
  const out = [y, dx, ...Object.values(grads)].map((t) => Array.from(t.dataSync()));
  tf.dispose([x, dy, y, dx, value, ...Object.values(grads)]);
  return out;
}

const cpuResults = new Map<string, number[][]>();

beforeAll(async () => {
  await tf.setBackend('cpu');
  for (const [name, make, shape] of CASES) cpuResults.set(name, run(make, shape));
  expect(await tf.setBackend('wasm')).toBe(true);
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe.each(CASES)('%s on wasm', (name, make, shape) => {
  test("output, dx and the weights' gradients equal cpu's", async () => {
    const wasm = await withoutLeakCheck(async () => run(make, shape));
    const cpu = cpuResults.get(name)!;
    expect(wasm).toHaveLength(cpu.length);
    for (let k = 0; k < cpu.length; k++) {
      const scale = Math.max(1, ...cpu[k].map(Math.abs));
      const err = Math.max(...wasm[k].map((v, i) => Math.abs(v - cpu[k][i])));
      expect(err / scale).toBeLessThan(1e-5);
    }
  });

  test('a gradient step leaks no tensor', async () => {
    const layer = make();
    const x = tf.randomNormal(shape, 0, 1, 'float32', 44);
    // The customGrad's saved tensors trip tfjs's IS_TEST leak check on wasm (see
    // withoutLeakCheck); leaks are measured here instead.
    await withoutLeakCheck(async () => tf.dispose(layer.apply(x) as tf.Tensor));
    const leaked = await leakedTensors(() =>
      withoutLeakCheck(async () => {
        for (let i = 0; i < 2; i++) {
          const { value, grads } = tf.variableGrads(
            () => tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar,
          );
          tf.dispose([value, ...Object.values(grads)]);
        }
      }),
    );
    expect(leaked).toBe(0);
    x.dispose();
  });
});
