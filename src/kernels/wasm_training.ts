/**
 * Registration of the gradient kernels `@tensorflow/tfjs-backend-wasm` 4.22 lacks for training
 * conv nets. Registration never replaces a kernel that exists (a later tfjs-backend-wasm that ships
 * its own keeps it) and is idempotent, also across two copies of the pack in one process (the
 * kernels carry a `Symbol.for` mark).
 */
import * as tf from '@tensorflow/tfjs';
import { DropnormValueError } from '../errors';
import { conv2dBackpropFilterKernel } from './conv2d_backprop_filter';
import { depthwiseBackpropFilterKernel, depthwiseBackpropInputKernel } from './depthwise_backprop';

/**
 * The kernels {@link registerWasmTrainingKernels} provides: the filter gradient of conv2d and both
 * gradients of depthwiseConv2d (and hence of separableConv2d). tfjs-backend-wasm 4.22 has the other
 * kernels a conv-net train step needs (Conv2DBackpropInput, MaxPoolGrad, AvgPoolGrad, …).
 */
export const WASM_TRAINING_KERNELS: readonly string[] = [
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
];

/** The wasm kernels the pack's kernels are composed of. */
const BUILDING_BLOCKS = [
  '_FusedMatMul',
  'Conv2D',
  'DepthwiseConv2dNative',
  'Transpose',
  'Reshape',
  'PadV2',
  'Reverse',
  'Sum',
];

const KERNELS = [
  conv2dBackpropFilterKernel,
  depthwiseBackpropFilterKernel,
  depthwiseBackpropInputKernel,
];

const MARK = Symbol.for('tfjs-dropnorm.wasmTrainingKernel');
for (const { kernelFunc } of KERNELS) {
  (kernelFunc as unknown as Record<symbol, boolean>)[MARK] = true;
}

function isPackKernel(config: tf.KernelConfig): boolean {
  return (config.kernelFunc as unknown as Record<symbol, boolean>)[MARK] === true;
}

/** What {@link registerWasmTrainingKernels} found and did. */
export interface WasmTrainingKernels {
  /** Kernels the pack serves on wasm: registered by this call or an earlier one. */
  added: string[];
  /** Kernels the wasm backend already had (its own or another library's): left as they were. */
  existing: string[];
}

/**
 * Lets the `wasm` backend train conv nets: registers, for `wasm` only, each kernel of
 * {@link WASM_TRAINING_KERNELS} that the installed `@tensorflow/tfjs-backend-wasm` does not have
 * (`Conv2DBackpropFilter`, `DepthwiseConv2dNativeBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropInput` in 4.22). Never replaces a registered kernel; calling it
 * again changes nothing.
 *
 * Each kernel is a composition of the backend's XNNPACK kernels, its GEMM (`BatchMatMul`) and
 * convolutions (no new native code), with the semantics of tfjs-backend-cpu's kernel: strides,
 * `pad` ('same' | 'valid' | number | explicit per-side pairs), `dimRoundingMode`, `dataFormat`
 * NHWC/NCHW (conv2d), depth multiplier ≥ 1 and dilations (depthwise). For a forward pass
 * y = conv(x, W) with stride s and top padding p, the filter gradient
 * ∂L/∂W[r, q, c, o] = Σ_{b,i,j} x[b, i·s + r − p, …, c]·dy[b, i, j, o] is, at stride 1, the product
 * of x's patch matrix with dy, and otherwise a convolution of x (batch and channels swapped) with
 * dy (dilated by s); the depthwise input gradient is the transposed depthwise convolution with the
 * flipped filter. A `dy` whose shape does not match the attributes is an error, never a wrong
 * gradient.
 *
 * Browser: `import '@tensorflow/tfjs-backend-wasm'; await tf.setBackend('wasm');
 * dn.registerWasmTrainingKernels();`. Node: `pickBackend()` from `tfjs-dropnorm/node` calls it
 * whenever it selects wasm.
 *
 * @throws DropnormValueError when the wasm backend is not registered (import
 *   `@tensorflow/tfjs-backend-wasm` first) or lacks a kernel these are built on.
 */
export function registerWasmTrainingKernels(): WasmTrainingKernels {
  if (tf.findBackendFactory('wasm') == null) {
    throw new DropnormValueError(
      "registerWasmTrainingKernels: the 'wasm' backend is not registered. Import " +
        "'@tensorflow/tfjs-backend-wasm' before calling it (then await tf.setBackend('wasm')).",
    );
  }
  const missing = BUILDING_BLOCKS.filter((name) => tf.getKernel(name, 'wasm') == null);
  const needed = KERNELS.filter(({ kernelName }) => tf.getKernel(kernelName, 'wasm') == null);
  if (needed.length > 0 && missing.length > 0) {
    throw new DropnormValueError(
      `registerWasmTrainingKernels: the wasm backend has no ${missing.join(', ')} kernel, which ` +
        `${needed.map((k) => k.kernelName).join(', ')} would be built on. Use ` +
        "@tensorflow/tfjs-backend-wasm ^4.22, or train on the 'cpu' backend.",
    );
  }
  const result: WasmTrainingKernels = { added: [], existing: [] };
  for (const kernel of KERNELS) {
    const current = tf.getKernel(kernel.kernelName, 'wasm');
    if (current == null) {
      tf.registerKernel({ ...kernel, backendName: 'wasm' });
      result.added.push(kernel.kernelName);
    } else if (isPackKernel(current)) {
      result.added.push(kernel.kernelName);
    } else {
      result.existing.push(kernel.kernelName);
    }
  }
  return result;
}
