/**
 * registerWasmTrainingKernels: registers only what the wasm backend lacks, for wasm only, never
 * replaces a kernel (a fake one registered first stays), is idempotent (also across two copies of
 * the pack), and says what it did. Its own file: the kernel registry is per test file.
 */
import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from 'tfjs-dropnorm';

test('before @tensorflow/tfjs-backend-wasm is imported it is a clear error', () => {
  expect(() => registerWasmTrainingKernels()).toThrow(
    /registerWasmTrainingKernels: the 'wasm' backend is not registered\. Import '@tensorflow\/tfjs-backend-wasm'/,
  );
  expect(WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'wasm'))).toEqual([
    undefined,
    undefined,
    undefined,
  ]);
});

describe('with the wasm backend', () => {
  const fake: tf.KernelConfig = {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    backendName: 'wasm',
    kernelFunc: () => {
      throw new Error('the fake kernel ran');
    },
  };
  const cpuKernels = WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'cpu'));
  const warn = jest.spyOn(console, 'warn');

  beforeAll(() => {
    require('@tensorflow/tfjs-backend-wasm');
    // What a later tfjs-backend-wasm (or another library) would have: a kernel of its own.
    tf.registerKernel(fake);
  });

  afterAll(() => warn.mockRestore());

  test('registers the missing kernels for wasm only and keeps an existing one', () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(registerWasmTrainingKernels()).toEqual({
      added: ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter'],
      existing: ['DepthwiseConv2dNativeBackpropInput'],
    });
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')).toBe(fake);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    expect(WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'cpu'))).toEqual(cpuKernels);
    expect(tf.getKernel('Conv2DBackpropFilter', 'webgl')).not.toBe(
      tf.getKernel('Conv2DBackpropFilter', 'wasm'),
    );
  });

  test('is idempotent: a second call changes nothing and reports the same', () => {
    const before = WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'wasm'));
    expect(registerWasmTrainingKernels()).toEqual({
      added: ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter'],
      existing: ['DepthwiseConv2dNativeBackpropInput'],
    });
    expect(WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'wasm'))).toEqual(before);
    // tfjs warns when a kernel is registered twice.
    expect(warn).not.toHaveBeenCalled();
  });

  test('a second copy of the pack recognizes the first one’s kernels', () => {
    const before = WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'wasm'));
    let other: typeof registerWasmTrainingKernels | undefined;
    jest.isolateModules(() => {
      other = require('../src/kernels').registerWasmTrainingKernels;
    });
    expect(other).not.toBe(registerWasmTrainingKernels);
    expect(other!()).toEqual({
      added: ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter'],
      existing: ['DepthwiseConv2dNativeBackpropInput'],
    });
    expect(WASM_TRAINING_KERNELS.map((name) => tf.getKernel(name, 'wasm'))).toEqual(before);
  });

  test('the kept kernel is the one that runs', async () => {
    expect(await tf.setBackend('wasm')).toBe(true);
    const x = tf.ones([1, 4, 4, 2]) as tf.Tensor4D;
    expect(() =>
      tf.grad((input: tf.Tensor) =>
        tf.sum(
          tf.depthwiseConv2d(input as tf.Tensor4D, tf.ones([3, 3, 2, 1]) as tf.Tensor4D, 1, 'same'),
        ),
      )(x),
    ).toThrow('the fake kernel ran');
    // The pack's filter gradient runs next to it.
    const dw = tf.grad((filter: tf.Tensor) =>
      tf.sum(tf.depthwiseConv2d(x, filter as tf.Tensor4D, 1, 'same')),
    )(tf.ones([3, 3, 2, 1]));
    expect(Array.from(dw.dataSync())).toEqual([
      9, 9, 12, 12, 9, 9, 12, 12, 16, 16, 12, 12, 9, 9, 12, 12, 9, 9,
    ]);
    await tf.setBackend('cpu');
  });
});
