import * as tf from '@tensorflow/tfjs';
import { backendFromArgv, CONV_TRAINING_KERNELS, pickBackend } from 'tfjs-dropnorm/node';

const WASM_LINE =
  'tfjs backend: wasm (tfjs 4.22.0; conv-net training kernels added by tfjs-dropnorm: ' +
  'Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter, DepthwiseConv2dNativeBackpropInput)';

describe('pickBackend', () => {
  afterEach(async () => {
    await tf.setBackend('cpu');
  });

  test('reads --backend NAME and --backend=NAME', () => {
    expect(backendFromArgv(['node', 'x.js', '--backend', 'wasm'])).toBe('wasm');
    expect(backendFromArgv(['node', 'x.js', '--backend=cpu'])).toBe('cpu');
    expect(backendFromArgv(['node', 'x.js'])).toBeUndefined();
  });

  test('an explicit flag beats TFJS_BACKEND, which beats the default order', async () => {
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    expect(
      await pickBackend({ argv: ['--backend', 'cpu'], env: { TFJS_BACKEND: 'wasm' }, log }),
    ).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(await pickBackend({ argv: [], env: { TFJS_BACKEND: 'wasm' }, log })).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(logs).toEqual(['tfjs backend: cpu (tfjs 4.22.0)', WASM_LINE]);
  });

  test('on wasm it registers the conv-net gradient kernels, and says which', async () => {
    const logs: string[] = [];
    await pickBackend({ backend: 'wasm', log: (l) => logs.push(l) });
    expect(logs.length <= 1 && logs.every((l) => l === WASM_LINE)).toBe(true);
    for (const name of CONV_TRAINING_KERNELS) expect(tf.getKernel(name, 'wasm')).toBeDefined();
    const grad = tf.grad((f: tf.Tensor) =>
      tf.sum(tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid')),
    )(tf.ones([3, 3, 1, 1]));
    expect(Array.from(grad.dataSync())).toEqual([4, 4, 4, 4, 4, 4, 4, 4, 4]);
  });

  test('training: true accepts only a backend that has every conv-net gradient kernel', async () => {
    const log = () => undefined;
    const name = await pickBackend({ argv: [], env: {}, log, training: true });
    for (const kernel of CONV_TRAINING_KERNELS) expect(tf.getKernel(kernel, name)).toBeDefined();
    // A wasm without MaxPoolGrad: skipped in the default order, an error when asked for.
    const maxPoolGrad = tf.getKernel('MaxPoolGrad', 'wasm');
    tf.unregisterKernel('MaxPoolGrad', 'wasm');
    try {
      await expect(pickBackend({ backend: 'wasm', log, training: true })).rejects.toThrow(
        /^pickBackend: backend 'wasm' cannot train conv nets: it lacks MaxPoolGrad\. Use another backend/,
      );
      expect(await pickBackend({ backend: 'wasm', log })).toBe('wasm');
      const fallback = await pickBackend({ argv: [], env: {}, log, training: true });
      expect(['tensorflow', 'cpu']).toContain(fallback);
    } finally {
      tf.registerKernel(maxPoolGrad);
    }
  });

  test('default: the fastest that loads (tfjs-node is absent here, so wasm)', async () => {
    const name = await pickBackend({ argv: [], env: {}, log: () => undefined });
    let hasTfjsNode = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      hasTfjsNode = false;
    }
    expect(name).toBe(hasTfjsNode ? 'tensorflow' : 'wasm');
  });

  test('an unknown or unavailable backend is a clear error', async () => {
    await expect(pickBackend({ backend: 'webgpu' as never, log: () => undefined })).rejects.toThrow(
      /^pickBackend: expected backend to be one of 'tensorflow', 'wasm', 'cpu', received: backend="webgpu"\./,
    );
    let hasTfjsNode = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      hasTfjsNode = false;
    }
    if (!hasTfjsNode) {
      await expect(pickBackend({ backend: 'tensorflow', log: () => undefined })).rejects.toThrow(
        /backend 'tensorflow' could not be loaded\. Install @tensorflow\/tfjs-node/,
      );
    }
  });
});
