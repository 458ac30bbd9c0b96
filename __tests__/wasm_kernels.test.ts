/**
 * The pack's wasm gradient kernels against tfjs-backend-cpu's: conv2d, depthwiseConv2d and
 * separableConv2d gradients (w.r.t. input and filter) over a property sweep of shapes, strides,
 * paddings, data formats and depth multipliers; dilated depthwise gradients against the
 * zero-upsampled filter; errors; no intermediate left on the wasm heap.
 */
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from 'tfjs-dropnorm';

type Pad = 'same' | 'valid' | number | [number, number, number, number];
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

/** ‖a − b‖∞ / ‖b‖∞: the error relative to the reference's largest entry. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let err = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

/** Runs `f` on `backend` and returns every output as shape + values; checks no tensor leaked. */
async function on(
  backend: string,
  f: () => tf.Tensor[],
): Promise<{ shape: number[]; values: Float32Array }[]> {
  await tf.setBackend(backend);
  const tensorsBefore = tf.memory().numTensors;
  const idsBefore = tf.engine().backend.numDataIds();
  const outs = tf.tidy(f);
  const result = outs.map((t) => ({ shape: t.shape, values: t.dataSync() as Float32Array }));
  tf.dispose(outs);
  expect(tf.memory().numTensors).toBe(tensorsBefore);
  expect(tf.engine().backend.numDataIds()).toBe(idsBefore);
  return result;
}

/** Runs `f` on cpu and on wasm and returns the largest relative error over its outputs. */
async function compare(f: () => tf.Tensor[]): Promise<number> {
  const reference = await on('cpu', f);
  const wasm = await on('wasm', f);
  let worst = 0;
  reference.forEach((r, i) => {
    expect(wasm[i].shape).toEqual(r.shape);
    worst = Math.max(worst, relativeError(wasm[i].values, r.values));
  });
  return worst;
}

/** Runs a kernel directly (attributes as tfjs-core's ops pass them, undefined ones included). */
function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>) {
  return tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;
}

function uniform(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed);
}

/** The tfjs pad attribute: per-side pairs become the explicit [[0,0],[t,b],[l,r],[0,0]] form. */
function padAttr(pad: Pad, dataFormat: 'NHWC' | 'NCHW' = 'NHWC') {
  if (!Array.isArray(pad)) return pad;
  const [t, b, l, r] = pad;
  return (
    dataFormat === 'NHWC'
      ? [
          [0, 0],
          [t, b],
          [l, r],
          [0, 0],
        ]
      : [
          [0, 0],
          [0, 0],
          [t, b],
          [l, r],
        ]
  ) as tf.backend_util.ExplicitPadding;
}

const padArb: fc.Arbitrary<Pad> = fc.oneof(
  fc.constant('same' as const),
  fc.constant('valid' as const),
  fc.integer({ min: 0, max: 3 }),
  fc.tuple(
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 0, max: 3 }),
  ),
);

const convArb = fc
  .record({
    batch: fc.integer({ min: 1, max: 4 }),
    kh: fc.integer({ min: 1, max: 7 }),
    kw: fc.integer({ min: 1, max: 7 }),
    // Input sides around the kernel size, odd and even.
    dh: fc.integer({ min: -3, max: 5 }),
    dw: fc.integer({ min: -3, max: 5 }),
    strides: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
    pad: padArb,
    inChannels: fc.integer({ min: 1, max: 8 }),
    outChannels: fc.integer({ min: 1, max: 8 }),
    multiplier: fc.integer({ min: 1, max: 3 }),
    rounding: fc.constantFrom<Rounding>(undefined, 'floor', 'round', 'ceil'),
    seed: fc.integer({ min: 0, max: 1e6 }),
  })
  .map((c) => ({ ...c, h: Math.max(1, c.kh + c.dh), w: Math.max(1, c.kw + c.dw) }));

/** The forward convolution's info, or null when it has no output (those are tfjs errors). */
function forwardInfo(
  xShape: number[],
  filterShape: number[],
  c: { strides: [number, number]; pad: Pad; rounding: Rounding },
  depthwise: boolean,
  dataFormat: 'NHWC' | 'NCHW' = 'NHWC',
  rounding: Rounding = undefined,
): tf.backend_util.Conv2DInfo | null {
  try {
    const info = tf.backend_util.computeConv2DInfo(
      xShape as [number, number, number, number],
      filterShape as [number, number, number, number],
      c.strides,
      1,
      padAttr(c.pad, dataFormat),
      rounding,
      depthwise,
      dataFormat === 'NHWC' ? 'channelsLast' : 'channelsFirst',
    );
    return info.outHeight > 0 && info.outWidth > 0 ? info : null;
  } catch {
    return null;
  }
}

/**
 * Whether the forward pass can run on wasm. With a numeric pad tfjs-core sizes the output from
 * the filter height and stride height on both axes; for a non-square filter or stride, wasm's
 * Conv2D (XNNPACK) then writes a wider output than tfjs allocated and corrupts the heap. The
 * backprop kernels follow tfjs-core's sizes (the kernel-level sweeps cover those pads).
 */
function forwardRunsOnWasm(c: { pad: Pad; kh: number; kw: number; strides: [number, number] }) {
  return typeof c.pad !== 'number' || (c.kh === c.kw && c.strides[0] === c.strides[1]);
}

/**
 * Whether wasm's forward convolution is right: with pad 'same', tfjs-backend-wasm 4.22 (XNNPACK's
 * TensorFlow-SAME mode) computes wrong outputs when on some axis the last window ends before the
 * input does, (⌈in/s⌉ − 1)·s + k < in (only possible for k < s), unless the filter is 1×1.
 * Gradients that depend on the forward output (separableConv2d's pointwise filter) avoid those
 * cases; the kernels themselves never use 'same' internally.
 */
function sameForwardIsRight(c: {
  pad: Pad;
  h: number;
  w: number;
  kh: number;
  kw: number;
  strides: [number, number];
}) {
  const short = (size: number, k: number, s: number) => (Math.ceil(size / s) - 1) * s + k < size;
  if (c.pad !== 'same' || c.kh * c.kw === 1) return true;
  return !short(c.h, c.kh, c.strides[0]) && !short(c.w, c.kw, c.strides[1]);
}

/** dimRoundingMode only goes with numeric or explicit pads (tfjs-core's rule). */
function rounding(c: { pad: Pad; rounding: Rounding }): Rounding {
  return typeof c.pad === 'string' ? undefined : c.rounding;
}

const RUNS = { numRuns: 40, seed: 20240612 };
const TOLERANCE = 1e-4;

type ConvCase = typeof convArb extends fc.Arbitrary<infer C> ? C : never;

/**
 * tf.grads of Σ w ⊙ conv(x, filter) w.r.t. x and filter, wasm against cpu, over the swept cases
 * whose forward runs on wasm; w is random, so dy is not all ones. `depthwise`: depthwiseConv2d
 * with a depth multiplier, else conv2d.
 */
async function expectConvGradsMatchCpu(depthwise: boolean): Promise<void> {
  const filterShape = (c: ConvCase) => [
    c.kh,
    c.kw,
    c.inChannels,
    depthwise ? c.multiplier : c.outChannels,
  ];
  const conv = (c: ConvCase, x: tf.Tensor, filter: tf.Tensor) => {
    const args = [x as tf.Tensor4D, filter as tf.Tensor4D, c.strides, padAttr(c.pad)] as const;
    return depthwise ? tf.depthwiseConv2d(...args) : tf.conv2d(...args);
  };
  const cases = convArb.filter(
    (c) =>
      forwardRunsOnWasm(c) &&
      forwardInfo([c.batch, c.h, c.w, c.inChannels], filterShape(c), c, depthwise) != null,
  );
  await fc.assert(
    fc.asyncProperty(cases, async (c) => {
      const error = await compare(() => {
        const x = uniform([c.batch, c.h, c.w, c.inChannels], c.seed);
        const filter = uniform(filterShape(c), c.seed + 1);
        const weights = uniform(
          forwardInfo(x.shape, filter.shape, c, depthwise)!.outShape,
          c.seed + 2,
        );
        const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c, a, b), weights));
        return tf.grads(f)([x, filter]);
      });
      expect(error).toBeLessThan(TOLERANCE);
    }),
    RUNS,
  );
}

/**
 * The largest relative error, wasm against cpu, of a filter-gradient and an input-gradient kernel
 * run directly on seeded x, filter and dy of the given shapes.
 */
function backpropKernelsError(
  kernels: { filter: string; input: string },
  seed: number,
  shapes: { x: number[]; filter: number[]; dy: number[] },
  attrs: Record<string, unknown>,
): Promise<number> {
  return compare(() => {
    const x = uniform(shapes.x, seed);
    const filter = uniform(shapes.filter, seed + 1);
    const dy = uniform(shapes.dy, seed + 2);
    return [
      runKernel(kernels.filter, { x, dy }, { ...attrs, filterShape: shapes.filter }),
      runKernel(kernels.input, { dy, filter }, { ...attrs, inputShape: shapes.x }),
    ];
  });
}

beforeAll(async () => {
  expect(await tf.setBackend('wasm')).toBe(true);
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('conv2d gradients on wasm equal the cpu backend', () => {
  test('tf.grads of conv2d w.r.t. input and filter (NHWC, every pad form, strides 1–3)', () =>
    expectConvGradsMatchCpu(false));

  test('the kernels directly: NHWC and NCHW, with dimRoundingMode (filter and input gradients)', async () => {
    const cases = fc
      .tuple(convArb, fc.constantFrom<'NHWC' | 'NCHW'>('NHWC', 'NCHW'))
      .map(([c, dataFormat]) => {
        const xShape =
          dataFormat === 'NHWC'
            ? [c.batch, c.h, c.w, c.inChannels]
            : [c.batch, c.inChannels, c.h, c.w];
        const filterShape = [c.kh, c.kw, c.inChannels, c.outChannels];
        const info = forwardInfo(xShape, filterShape, c, false, dataFormat, rounding(c));
        return { c, dataFormat, xShape, filterShape, info };
      })
      .filter(({ info }) => info != null);
    await fc.assert(
      fc.asyncProperty(cases, async ({ c, dataFormat, xShape, filterShape, info }) => {
        const attrs = {
          strides: c.strides,
          pad: padAttr(c.pad, dataFormat),
          dataFormat,
          dimRoundingMode: rounding(c),
        };
        const error = await backpropKernelsError(
          { filter: 'Conv2DBackpropFilter', input: 'Conv2DBackpropInput' },
          c.seed,
          { x: xShape, filter: filterShape, dy: info!.outShape },
          attrs,
        );
        expect(error).toBeLessThan(TOLERANCE);
      }),
      RUNS,
    );
  });
});

describe('each way Conv2DBackpropFilter is computed equals the cpu backend', () => {
  // The kernel picks a patch-matrix product (stride 1), dyᵀ·x (1×1, fewer input than output
  // channels) or a convolution with dy as the filter (strides > 1, or patches too large next to
  // dy); the sweeps above rarely reach some of these cases at their sizes.
  const cases: [string, number[], number[], [number, number], Pad, 'NHWC' | 'NCHW'][] = [
    ['patches, same, as tall as x', [3, 7, 6, 3], [3, 3, 3, 8], [1, 1], 'same', 'NHWC'],
    ['patches, valid, 3×2', [2, 9, 8, 2], [3, 2, 2, 5], [1, 1], 'valid', 'NHWC'],
    ['patches, uneven explicit pads', [2, 6, 7, 2], [3, 3, 2, 4], [1, 1], [2, 0, 0, 1], 'NHWC'],
    ['patches, shifts past the input', [2, 3, 3, 1], [3, 5, 1, 6], [1, 1], [3, 1, 4, 0], 'NHWC'],
    ['patches, NCHW', [2, 3, 8, 7], [3, 3, 3, 6], [1, 1], 'same', 'NCHW'],
    ['patches, 1×1 with C ≥ O', [2, 5, 5, 6], [1, 1, 6, 2], [1, 1], 'valid', 'NHWC'],
    ['dyᵀ·x, 1×1 with C < O', [3, 5, 4, 2], [1, 1, 2, 7], [1, 1], 'valid', 'NHWC'],
    ['dyᵀ·x, NCHW', [3, 2, 5, 4], [1, 1, 2, 7], [1, 1], 0, 'NCHW'],
    ['convolution, stride 2', [2, 9, 8, 3], [3, 3, 3, 4], [2, 2], 'same', 'NHWC'],
    ['convolution, patches too large for dy', [2, 8, 8, 4], [5, 5, 4, 2], [1, 1], 'same', 'NHWC'],
    ['convolution, output wider than x', [2, 4, 3, 2], [1, 1, 2, 3], [1, 1], 2, 'NHWC'],
  ];
  test.each(cases)('%s', async (_, xShape, filterShape, strides, pad, dataFormat) => {
    const c = { strides, pad, rounding: undefined };
    const info = forwardInfo(xShape, filterShape, c, false, dataFormat)!;
    const attrs = { strides, pad: padAttr(pad, dataFormat), dataFormat, filterShape };
    const error = await compare(() => [
      runKernel(
        'Conv2DBackpropFilter',
        { x: uniform(xShape, 1), dy: uniform(info.outShape, 2) },
        attrs,
      ),
    ]);
    expect(error).toBeLessThan(TOLERANCE);
  });
});

test("XNNPACK's cache of packed products does not mix up dy or x with the same data in other shapes", async () => {
  // tfjs-backend-wasm caches a product's packed right-hand side under the tensor's id, and a
  // reshape keeps the id: a product of the same data in another shape, before or after the kernel,
  // must neither feed the kernel a stale packing nor be fed the kernel's.
  const c = { strides: [1, 1] as [number, number], pad: 'same' as Pad, rounding: undefined };
  for (const [xShape, filterShape] of [
    [
      [2, 4, 4, 3],
      [3, 3, 3, 6],
    ],
    [
      [2, 4, 4, 2],
      [1, 1, 2, 6],
    ],
  ]) {
    const info = forwardInfo(xShape, filterShape, c, false)!;
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape };
    const error = await compare(() => {
      const x = uniform(xShape, 1);
      const dy = uniform(info.outShape, 2);
      const asWeights = (t: tf.Tensor) => {
        const n = t.size / 4;
        return tf.matMul(uniform([3, n], 3), tf.reshape(t, [n, 4]));
      };
      const before = [asWeights(dy), asWeights(x)];
      const grad = runKernel('Conv2DBackpropFilter', { x, dy }, attrs);
      return [...before, grad, asWeights(dy), asWeights(x)];
    });
    expect(error).toBeLessThan(TOLERANCE);
  }
});

describe('depthwiseConv2d and separableConv2d gradients on wasm equal the cpu backend', () => {
  test('tf.grads of depthwiseConv2d w.r.t. input and filter (depth multiplier 1–3)', () =>
    expectConvGradsMatchCpu(true));

  test('the kernels directly, with dimRoundingMode', async () => {
    const cases = convArb
      .map((c) => {
        const xShape = [c.batch, c.h, c.w, c.inChannels];
        const filterShape = [c.kh, c.kw, c.inChannels, c.multiplier];
        return {
          c,
          xShape,
          filterShape,
          info: forwardInfo(xShape, filterShape, c, true, 'NHWC', rounding(c)),
        };
      })
      .filter(({ info }) => info != null);
    await fc.assert(
      fc.asyncProperty(cases, async ({ c, xShape, filterShape, info }) => {
        const attrs = {
          strides: c.strides,
          pad: padAttr(c.pad),
          dilations: [1, 1],
          dimRoundingMode: rounding(c),
        };
        const error = await backpropKernelsError(
          {
            filter: 'DepthwiseConv2dNativeBackpropFilter',
            input: 'DepthwiseConv2dNativeBackpropInput',
          },
          c.seed,
          { x: xShape, filter: filterShape, dy: info!.outShape },
          attrs,
        );
        expect(error).toBeLessThan(TOLERANCE);
      }),
      RUNS,
    );
  });

  test('tf.grads of separableConv2d w.r.t. input, depthwise and pointwise filters', async () => {
    const cases = convArb.filter(
      (c) =>
        typeof c.pad === 'string' &&
        sameForwardIsRight(c) &&
        forwardInfo(
          [c.batch, c.h, c.w, c.inChannels],
          [c.kh, c.kw, c.inChannels, c.multiplier],
          c,
          true,
        ) != null,
    );
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const error = await compare(() => {
          const x = uniform([c.batch, c.h, c.w, c.inChannels], c.seed);
          const depthwise = uniform([c.kh, c.kw, c.inChannels, c.multiplier], c.seed + 1);
          const pointwise = uniform([1, 1, c.inChannels * c.multiplier, c.outChannels], c.seed + 2);
          const info = forwardInfo(x.shape, depthwise.shape, c, true)!;
          const weights = uniform([...info.outShape.slice(0, 3), c.outChannels], c.seed + 3);
          const f = (a: tf.Tensor, b: tf.Tensor, p: tf.Tensor) =>
            tf.sum(
              tf.mul(
                tf.separableConv2d(
                  a as tf.Tensor4D,
                  b as tf.Tensor4D,
                  p as tf.Tensor4D,
                  c.strides,
                  c.pad as 'same' | 'valid',
                ),
                weights,
              ),
            );
          return tf.grads(f)([x, depthwise, pointwise]);
        });
        expect(error).toBeLessThan(TOLERANCE);
      }),
      { ...RUNS, numRuns: 25 },
    );
  });

  test('dilated depthwise gradients equal those of the zero-upsampled filter (the cpu kernels ignore dilations)', async () => {
    // depthwiseConv2d(x, W, dilation d) = depthwiseConv2d(x, W_d) with W_d[r·d, q·d] = W[r, q] and
    // zeros between, so ∂L/∂x agree and ∂L/∂W is ∂L/∂W_d at the taps.
    const cases = fc
      .tuple(convArb, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }))
      .map(([c, dil0, dil1]) => {
        const ke = [(c.kh - 1) * dil0 + 1, (c.kw - 1) * dil1 + 1];
        const xShape = [c.batch, Math.max(c.h, ke[0]), Math.max(c.w, ke[1]), c.inChannels];
        const dense = [ke[0], ke[1], c.inChannels, c.multiplier];
        return {
          c,
          dil: [dil0, dil1],
          ke,
          xShape,
          dense,
          info: forwardInfo(xShape, dense, c, true),
        };
      })
      .filter(({ info, dil }) => info != null && dil[0] * dil[1] > 1);
    await fc.assert(
      fc.asyncProperty(cases, async ({ c, dil, ke, xShape, dense, info }) => {
        const filterShape = [c.kh, c.kw, c.inChannels, c.multiplier];
        const attrs = { strides: c.strides, pad: padAttr(c.pad) };
        const inputs = () => ({
          x: uniform(xShape, c.seed),
          dy: uniform(info!.outShape, c.seed + 2),
          filter: uniform(filterShape, c.seed + 1),
        });
        // W_d by scattering W's taps: a [kh·kw, ke0·ke1] 0/1 matrix applied along the taps.
        const upsample = (filter: tf.Tensor) => {
          const scatter = tf.buffer([c.kh * c.kw, ke[0] * ke[1]]);
          for (let r = 0; r < c.kh; r++)
            for (let q = 0; q < c.kw; q++)
              scatter.set(1, r * c.kw + q, r * dil[0] * ke[1] + q * dil[1]);
          const flat = tf.reshape(filter, [c.kh * c.kw, -1]);
          return tf.reshape(tf.matMul(scatter.toTensor(), flat, true), dense);
        };
        const taps = (gradDense: tf.Tensor) => {
          const rows = tf.range(0, c.kh).mul(dil[0]).toInt();
          const cols = tf.range(0, c.kw).mul(dil[1]).toInt();
          return tf.gather(tf.gather(gradDense, rows, 0), cols, 1);
        };
        const reference = await on('cpu', () => {
          const { x, dy, filter } = inputs();
          return [
            taps(
              runKernel(
                'DepthwiseConv2dNativeBackpropFilter',
                { x, dy },
                { ...attrs, dilations: [1, 1], filterShape: dense },
              ) as tf.Tensor,
            ),
            runKernel(
              'DepthwiseConv2dNativeBackpropInput',
              { dy, filter: upsample(filter) },
              { ...attrs, dilations: [1, 1], inputShape: xShape },
            ) as tf.Tensor,
          ];
        });
        const wasm = await on('wasm', () => {
          const { x, dy, filter } = inputs();
          return [
            runKernel(
              'DepthwiseConv2dNativeBackpropFilter',
              { x, dy },
              { ...attrs, dilations: dil, filterShape },
            ) as tf.Tensor,
            runKernel(
              'DepthwiseConv2dNativeBackpropInput',
              { dy, filter },
              { ...attrs, dilations: dil, inputShape: xShape },
            ) as tf.Tensor,
          ];
        });
        reference.forEach((r, i) => {
          expect(wasm[i].shape).toEqual(r.shape);
          expect(relativeError(wasm[i].values, r.values)).toBeLessThan(TOLERANCE);
        });
      }),
      { ...RUNS, numRuns: 25 },
    );
  });
});

describe('errors', () => {
  async function messageOn(backend: string, f: () => unknown): Promise<string> {
    await tf.setBackend(backend);
    try {
      tf.tidy(() => {
        f();
        return undefined;
      });
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  }

  test("tfjs-core's error for dilated conv2d and depthwise gradients is unchanged", async () => {
    // Test mode's per-kernel leak check fails on wasm for a customGrad op (fused conv2d) before
    // its gradient runs: wasm's Identity copies the tensors the op saves. Not a leak, not ours.
    tf.env().set('IS_TEST', false);
    try {
      const x = () => tf.ones([1, 6, 6, 2]) as tf.Tensor4D;
      const grads: [string, () => unknown][] = [
        [
          'conv2d',
          () =>
            tf.grad((f: tf.Tensor) =>
              tf.sum(tf.conv2d(x(), f as tf.Tensor4D, 1, 'same', 'NHWC', 2)),
            )(tf.ones([3, 3, 2, 2])),
        ],
        [
          'fused conv2d',
          () =>
            tf.grad((f: tf.Tensor) =>
              tf.sum(
                tf.fused.conv2d({
                  x: x(),
                  filter: f as tf.Tensor4D,
                  strides: 1,
                  pad: 'same',
                  dilations: 2,
                  bias: tf.zeros([2]),
                }),
              ),
            )(tf.ones([3, 3, 2, 2])),
        ],
        [
          'depthwiseConv2d',
          () =>
            tf.grad((f: tf.Tensor) =>
              tf.sum(tf.depthwiseConv2d(x(), f as tf.Tensor4D, 1, 'same', 'NHWC', 2)),
            )(tf.ones([3, 3, 2, 1])),
        ],
      ];
      for (const [name, f] of grads) {
        const cpu = await messageOn('cpu', f);
        const wasm = await messageOn('wasm', f);
        expect([name, wasm]).toEqual([name, cpu]);
        expect(cpu).toMatch(/dilation rates greater than 1/);
      }
    } finally {
      tf.env().set('IS_TEST', true);
    }
  });

  test('a dy whose shape the attributes do not give is an error, not a wrong gradient', async () => {
    // pad 1, stride 2, 'ceil' on a 6×6 input gives a 4×4 output; tfjs-core's conv2d gradient drops
    // dimRoundingMode, so the kernel is asked for a 3×3 geometry (the cpu kernel then silently
    // ignores dy's last row and column).
    const message = await messageOn('wasm', () =>
      runKernel(
        'Conv2DBackpropFilter',
        { x: tf.ones([1, 6, 6, 1]), dy: tf.ones([1, 4, 4, 1]) },
        { strides: [2, 2], pad: 1, dataFormat: 'NHWC', filterShape: [3, 3, 1, 1] },
      ),
    );
    expect(message).toMatch(
      /^Conv2DBackpropFilter \(tfjs-dropnorm, wasm\): expected dy\.shape to be \[1,3,3,1\], .*received: dy\.shape=\[1,4,4,1\]\. .*dimRoundingMode/,
    );
    for (const name of [
      'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
    ]) {
      const depthwise = await messageOn('wasm', () =>
        runKernel(
          name,
          { x: tf.ones([1, 6, 6, 1]), dy: tf.ones([1, 5, 5, 1]), filter: tf.ones([3, 3, 1, 1]) },
          {
            strides: [1, 1],
            pad: 'same',
            dilations: [1, 1],
            filterShape: [3, 3, 1, 1],
            inputShape: [1, 6, 6, 1],
          },
        ),
      );
      expect(depthwise).toMatch(
        new RegExp(`^${name} \\(tfjs-dropnorm, wasm\\): expected dy\\.shape to be \\[1,6,6,1\\]`),
      );
    }
  });

  test('a filter whose input channels differ from the input is an error', async () => {
    const message = await messageOn('wasm', () =>
      runKernel(
        'Conv2DBackpropFilter',
        { x: tf.ones([1, 6, 6, 2]), dy: tf.ones([1, 6, 6, 1]) },
        { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 3, 1] },
      ),
    );
    expect(message).toMatch(
      /expected filterShape\[2\] to equal the input channels of x \(2\), received: filterShape\[2\]=3/,
    );
  });
});
