/**
 * Batch-normalization folding math as pure tensor functions (no models, no state).
 *
 * At inference a BatchNorm is a per-channel affine map y = s·x + t with
 *
 *   s = γ/√(σ²+ε),   t = β − μ·s                     (γ = 1 without scale, β = 0 without center)
 *
 * so a linear layer z = W·x + b followed by it is the linear layer (PyTorch's
 * `fuse_linear_bn_weights` / `fuse_conv_bn_weights`)
 *
 *   W' = W·s (per output channel),   b' = b·s + t = (b−μ)·γ/√(σ²+ε) + β,
 *
 * and a BatchNorm followed by a linear layer (the forward fold) is
 *
 *   W'' = W·s (per input channel),   b'' = b + Σ t·W   (sum over the kernel's input taps).
 */
import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';

/**
 * Kernel layouts of the tf.layers that a BatchNorm folds into:
 * - `'dense'`: `[in, out]`
 * - `'conv1d'`: `[k, in, out]`
 * - `'conv2d'`: `[kh, kw, in, out]`
 * - `'conv3d'`: `[kd, kh, kw, in, out]` (tf.layers.conv3d's kernel, as tfjs's conv3d op takes it)
 * - `'depthwiseConv2d'`: `[kh, kw, in, multiplier]`; output channel `i·multiplier + j`
 * - `'conv2dTranspose'`: `[kh, kw, out, in]` (tfjs stores the transposed kernel this way round)
 */
export type KernelLayout =
  'dense' | 'conv1d' | 'conv2d' | 'conv3d' | 'depthwiseConv2d' | 'conv2dTranspose';

/** The inference parameters of a BatchNorm, each a vector over the C channels. */
export interface BatchNormStatistics {
  /** γ, or null for `scale: false` (γ = 1). */
  gamma: tf.Tensor | null;
  /** β, or null for `center: false` (β = 0). */
  beta: tf.Tensor | null;
  movingMean: tf.Tensor;
  movingVariance: tf.Tensor;
  epsilon: number;
}

/** A per-channel affine map y = scale·x + shift. */
export interface ChannelAffine {
  scale: tf.Tensor1D;
  shift: tf.Tensor1D;
}

/** A kernel and its bias vector. */
export interface KernelAndBias {
  kernel: tf.Tensor;
  bias: tf.Tensor1D;
}

const KERNEL_RANK: Record<KernelLayout, number> = {
  dense: 2,
  conv1d: 3,
  conv2d: 4,
  conv3d: 5,
  depthwiseConv2d: 4,
  conv2dTranspose: 4,
};

function checkLayout(owner: string, kernel: tf.Tensor, layout: KernelLayout): void {
  const rank = KERNEL_RANK[layout];
  if (rank === undefined) {
    throw invalidArgument(
      owner,
      'layout',
      layout,
      "to be one of 'dense' | 'conv1d' | 'conv2d' | 'conv3d' | 'depthwiseConv2d' | 'conv2dTranspose'",
    );
  }
  if (kernel.rank !== rank) {
    throw invalidArgument(
      owner,
      'kernel rank',
      kernel.rank,
      `to be ${rank} for layout '${layout}'`,
      `Received kernel shape ${JSON.stringify(kernel.shape)}.`,
    );
  }
}

/** Number of output channels of a kernel: the BatchNorm after the layer has this many. */
export function outputChannels(kernelShape: readonly number[], layout: KernelLayout): number {
  const [, b, c, d] = kernelShape;
  switch (layout) {
    case 'dense':
      return b;
    case 'conv1d':
      return c;
    case 'conv2d':
      return d;
    case 'conv3d':
      return kernelShape[4];
    case 'depthwiseConv2d':
      return c * d;
    case 'conv2dTranspose':
      return c;
  }
}

/** Number of input channels of a kernel: the BatchNorm before the layer has this many. */
export function inputChannels(kernelShape: readonly number[], layout: KernelLayout): number {
  const [a, b, c, d] = kernelShape;
  switch (layout) {
    case 'dense':
      return a;
    case 'conv1d':
      return b;
    case 'conv2d':
    case 'depthwiseConv2d':
      return c;
    case 'conv3d':
      return d;
    case 'conv2dTranspose':
      return d;
  }
}

/** Shape that broadcasts a per-output-channel vector against the kernel. */
function outputChannelShape(kernelShape: readonly number[], layout: KernelLayout): number[] {
  const ones = kernelShape.map(() => 1);
  if (layout === 'depthwiseConv2d') return [1, 1, kernelShape[2], kernelShape[3]];
  const axis = layout === 'conv2dTranspose' ? 2 : kernelShape.length - 1;
  ones[axis] = kernelShape[axis];
  return ones;
}

/** Shape that broadcasts a per-input-channel vector against the kernel. */
function inputChannelShape(kernelShape: readonly number[], layout: KernelLayout): number[] {
  const ones = kernelShape.map(() => 1);
  const axis = layout === 'conv2dTranspose' ? 3 : kernelShape.length - 2;
  ones[axis] = kernelShape[axis];
  return ones;
}

/**
 * The per-channel affine map of a BatchNorm at inference: `s = γ/√(σ²+ε)`, `t = β − μ·s`
 * (γ = 1 and β = 0 when absent).
 */
export function batchNormAffine(bn: BatchNormStatistics): ChannelAffine {
  return tf.tidy(() => {
    let scale = tf.rsqrt(tf.add(tf.reshape(bn.movingVariance, [-1]), bn.epsilon));
    if (bn.gamma) scale = tf.mul(scale, tf.reshape(bn.gamma, [-1]));
    let shift = tf.neg(tf.mul(tf.reshape(bn.movingMean, [-1]), scale));
    if (bn.beta) shift = tf.add(shift, tf.reshape(bn.beta, [-1]));
    return { scale: scale as tf.Tensor1D, shift: shift as tf.Tensor1D };
  });
}

/**
 * Folds a per-output-channel affine map y = s·z + t applied after a linear layer z = W·x + b into
 * it: `W' = W·s` along the output channel, `b' = b·s + t`. A null bias counts as zero.
 */
export function foldAffineIntoKernel(
  kernel: tf.Tensor,
  bias: tf.Tensor | null,
  affine: ChannelAffine,
  layout: KernelLayout,
): KernelAndBias {
  const owner = 'foldAffineIntoKernel';
  checkLayout(owner, kernel, layout);
  const channels = outputChannels(kernel.shape, layout);
  if (affine.scale.size !== channels || affine.shift.size !== channels) {
    throw invalidArgument(
      owner,
      'affine size',
      affine.scale.size,
      `to equal the kernel's ${channels} output channels (layout '${layout}')`,
      `Received kernel shape ${JSON.stringify(kernel.shape)}.`,
    );
  }
  return tf.tidy(() => {
    const folded = tf.mul(
      kernel,
      tf.reshape(affine.scale, outputChannelShape(kernel.shape, layout)),
    );
    const b = bias ? tf.reshape(bias, [-1]) : tf.zeros([channels]);
    return { kernel: folded, bias: tf.add(tf.mul(b, affine.scale), affine.shift) as tf.Tensor1D };
  });
}

/**
 * Folds a BatchNorm that follows a linear layer into the layer's kernel and bias:
 * `W' = W·γ/√(σ²+ε)`, `b' = (b−μ)·γ/√(σ²+ε) + β`, per output channel. The two-level split of
 * PyTorch's `fuse_conv_bn_weights`; see {@link KernelLayout} for the layouts.
 */
export function foldBatchNormWeights(
  kernel: tf.Tensor,
  bias: tf.Tensor | null,
  bn: BatchNormStatistics,
  layout: KernelLayout,
): KernelAndBias {
  const affine = batchNormAffine(bn);
  try {
    return foldAffineIntoKernel(kernel, bias, affine, layout);
  } finally {
    tf.dispose([affine.scale, affine.shift]);
  }
}

/**
 * Folds a per-input-channel affine map x' = s·x + t applied before a linear layer z = W·x' + b
 * into it: `W'' = W·s` along the input channel, `b'' = b + Σ t·W` summed over every input tap of
 * an output channel. Exact for Dense, and for convolutions only when every output sees a full
 * window of real inputs (padding 'valid'): with zero padding the padded taps would receive t.
 * Not defined for 'conv2dTranspose', whose outputs receive a varying number of taps.
 */
export function foldAffineIntoNextKernel(
  kernel: tf.Tensor,
  bias: tf.Tensor | null,
  affine: ChannelAffine,
  layout: Exclude<KernelLayout, 'conv2dTranspose'>,
): KernelAndBias {
  const owner = 'foldAffineIntoNextKernel';
  if ((layout as KernelLayout) === 'conv2dTranspose') {
    throw invalidArgument(
      owner,
      'layout',
      layout,
      "not to be 'conv2dTranspose'",
      'A transposed convolution gives its border outputs fewer taps, so the shift does not fold.',
    );
  }
  checkLayout(owner, kernel, layout);
  const channels = inputChannels(kernel.shape, layout);
  if (affine.scale.size !== channels || affine.shift.size !== channels) {
    throw invalidArgument(
      owner,
      'affine size',
      affine.scale.size,
      `to equal the kernel's ${channels} input channels (layout '${layout}')`,
      `Received kernel shape ${JSON.stringify(kernel.shape)}.`,
    );
  }
  return tf.tidy(() => {
    const shape = inputChannelShape(kernel.shape, layout);
    const folded = tf.mul(kernel, tf.reshape(affine.scale, shape));
    const shifted = tf.mul(kernel, tf.reshape(affine.shift, shape));
    // Σ over taps and input channels; for depthwise only over taps (each output has one input).
    const tapAxes = layout === 'depthwiseConv2d' ? [0, 1] : shape.slice(0, -1).map((_, i) => i);
    const extra = tf.reshape(tf.sum(shifted, tapAxes), [-1]);
    const b = bias ? tf.add(tf.reshape(bias, [-1]), extra) : extra;
    return { kernel: folded, bias: b as tf.Tensor1D };
  });
}
