/**
 * Dropout-family math as pure tensor functions (no state): masks and the ops built on them.
 *
 * - Dropout: Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from
 *   Overfitting" (JMLR 15). Inverted scaling 1/(1−p) in training is the usual implementation.
 * - Spatial dropout: Tompson et al. 2015, "Efficient Object Localization Using Convolutional
 *   Networks" (arXiv:1411.4280): one Bernoulli draw per (sample, channel).
 * - Gaussian dropout: Srivastava et al. 2014, §10: multiplicative N(1, p/(1−p)) noise.
 * - Alpha dropout: Klambauer et al. 2017, "Self-Normalizing Neural Networks" (arXiv:1706.02515).
 * - DropConnect: Wan et al. 2013, "Regularization of Neural Networks using DropConnect" (ICML).
 * - DropBlock: Ghiasi et al. 2018, "DropBlock: A regularization method for convolutional networks"
 *   (arXiv:1810.12890).
 * - DropPath / stochastic depth: Huang et al. 2016, "Deep Networks with Stochastic Depth"
 *   (arXiv:1603.09382).
 *
 * Every random op takes an optional `seed`; the same seed draws the same mask (see `random.ts` for
 * how layers turn one seed into a new seed per call). `rate` is always the drop probability p.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, checkOptionType, invalidArgument, optionSpec } from '../errors';

/** Channel layout of an image-like tensor, as in `tf.layers` (`dataFormat`). */
export type DataFormat = 'channelsLast' | 'channelsFirst';

/** SELU's α (Klambauer et al. 2017, eq. 2), as the float64 nearest the digits Keras and tfjs write. */
export const SELU_ALPHA = 1.6732632423543772;
/** SELU's scale λ (Klambauer et al. 2017, eq. 2); dropped units of AlphaDropout are set to −λα. */
export const SELU_SCALE = 1.0507009873554805;

/** Throws unless 0 ≤ rate < 1 (NaN included in the failures). */
export function checkRate(owner: string, rate: number): void {
  if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) {
    throw invalidArgument(
      owner,
      'rate',
      rate,
      'to be a number in [0, 1) (the probability of dropping a unit)',
      'Typical values are 0.1–0.5; rate 1 would drop everything.',
    );
  }
}

/**
 * A 0/1 float32 mask of `shape` with P(1) = 1 − rate, drawn exactly as `tf.dropout` draws its keep
 * flags, `floor(u + (1 − rate))` with `u = tf.randomUniform(shape, 0, 1, 'float32', seed)`, so the
 * same seed gives the built-in's mask bit for bit.
 */
export function keepMask(shape: number[], rate: number, seed?: number): tf.Tensor {
  return tf.tidy(() => tf.floor(tf.add(tf.randomUniform(shape, 0, 1, 'float32', seed), 1 - rate)));
}

/**
 * Throws unless `noiseShape` is null/undefined or an array of positive integers and nulls (the
 * `noiseShape` argument of `tf.layers.dropout`).
 */
export function checkNoiseShapeArg(owner: string, noiseShape: unknown): void {
  if (
    noiseShape != null &&
    (!Array.isArray(noiseShape) ||
      noiseShape.some((d) => d != null && !(Number.isInteger(d) && d >= 1)))
  ) {
    throw invalidArgument(
      owner,
      'noiseShape',
      noiseShape,
      'to be an array of positive integers or nulls',
    );
  }
}

/**
 * At build time: throws when `noiseShape` cannot broadcast against the (partly known) input shape.
 * Unknown (null) input dimensions are checked again on the real tensor, by {@link resolveNoiseShape}.
 */
export function checkNoiseShapeFits(
  owner: string,
  inputShape: readonly (number | null)[],
  noiseShape: readonly (number | null)[] | null,
): void {
  if (noiseShape == null) return;
  const known = inputShape.map((d, i) => d ?? noiseShape[i] ?? 1);
  resolveNoiseShape(known, noiseShape, owner);
}

/**
 * The concrete noise shape for an input of `shape`: `noiseShape` with `null` entries replaced by
 * the input's dimension (the tf.layers convention). Throws when it does not broadcast against the
 * input (each entry must be 1 or the input's dimension, and the ranks must agree).
 */
export function resolveNoiseShape(
  shape: readonly number[],
  noiseShape: readonly (number | null)[] | null | undefined,
  owner = 'dropout',
): number[] {
  if (noiseShape == null) return shape.slice();
  const fix =
    'Each entry must be 1 (share the mask along that axis), the input dimension, or null ' +
    `(use the input dimension). Input shape ${JSON.stringify(shape)}.`;
  if (noiseShape.length !== shape.length) {
    throw invalidArgument(
      owner,
      'noiseShape',
      noiseShape,
      `to have the input's rank ${shape.length}`,
      fix,
    );
  }
  return noiseShape.map((d, i) => {
    if (d == null) return shape[i];
    if (d !== 1 && d !== shape[i]) {
      throw invalidArgument(
        owner,
        'noiseShape',
        noiseShape,
        `to broadcast against the input (entry ${i} is ${d}, the input has ${shape[i]})`,
        fix,
      );
    }
    return d;
  });
}

/** Options of {@link dropout}. */
export interface DropoutOptions {
  /** Shape of the mask, broadcast against x (null entries: the input's dimension). */
  noiseShape?: readonly (number | null)[] | null;
  seed?: number;
  /** `'inverted'` (default) scales kept units by 1/(1−rate); `'classic'` leaves them unscaled. */
  mode?: 'inverted' | 'classic';
}

// The options of each op and their types (tsc checks them against the option types).
const DATA_FORMATS = ['channelsLast', 'channelsFirst'] as const;
const DROPOUT_OPTIONS = optionSpec<DropoutOptions>({
  noiseShape: 'shape|null',
  seed: 'number',
  mode: ['inverted', 'classic'],
});
type OptionsOf<F extends (...args: never[]) => unknown, I extends number> = NonNullable<
  Parameters<F>[I]
>;
const SPATIAL_OPTIONS = optionSpec<OptionsOf<typeof spatialDropout, 2>>({
  dataFormat: DATA_FORMATS,
  seed: 'number',
});
const ALPHA_OPTIONS = optionSpec<OptionsOf<typeof alphaDropout, 2>>({
  noiseShape: 'shape|null',
  seed: 'number',
});
const DROP_BLOCK_OPTIONS = optionSpec<OptionsOf<typeof dropBlock2d, 3>>({
  dataFormat: DATA_FORMATS,
  seed: 'number',
});

/**
 * Training-time dropout (Srivastava et al. 2014): y = x ⊙ m / (1−p) with m ~ Bernoulli(1−p)
 * (inverted), or y = x ⊙ m (classic, whose inference is y = (1−p)·x). E[y] = x for inverted.
 * For the same seed the inverted output equals `tf.dropout(x, rate, noiseShape, seed)`.
 */
export function dropout(x: tf.Tensor, rate: number, options: DropoutOptions = {}): tf.Tensor {
  checkRate('ops.dropout', rate);
  checkOptionKeys('ops.dropout', options, DROPOUT_OPTIONS);
  if (rate === 0) return tf.clone(x);
  return tf.tidy(() => {
    const shape = resolveNoiseShape(x.shape, options.noiseShape, 'ops.dropout');
    const mask = keepMask(shape, rate, options.seed);
    // div then mul, in tf.dropout's order: the same float32 rounding as the built-in.
    const multiplier = options.mode === 'classic' ? mask : tf.div(mask, 1 - rate);
    return tf.mul(x, multiplier);
  });
}

/**
 * Mask shape of spatial dropout: one draw per (sample, channel), broadcast over every spatial axis
 * (`[N, 1, …, 1, C]` channels-last, `[N, C, 1, …, 1]` channels-first).
 */
export function spatialNoiseShape(shape: readonly number[], dataFormat: DataFormat): number[] {
  const channelAxis = dataFormat === 'channelsFirst' ? 1 : shape.length - 1;
  return shape.map((d, i) => (i === 0 || i === channelAxis ? d : 1));
}

/**
 * Spatial dropout (Tompson et al. 2015): whole feature maps are dropped, y = x ⊙ m / (1−p) with
 * one m ~ Bernoulli(1−p) per sample and channel. Neighbouring activations in a map are strongly
 * correlated, so element-wise dropout barely regularizes convolutions; dropping a whole channel does.
 */
export function spatialDropout(
  x: tf.Tensor,
  rate: number,
  options: { dataFormat?: DataFormat; seed?: number } = {},
): tf.Tensor {
  checkRate('ops.spatialDropout', rate);
  checkOptionKeys('ops.spatialDropout', options, SPATIAL_OPTIONS);
  return dropout(x, rate, {
    noiseShape: spatialNoiseShape(x.shape, options.dataFormat ?? 'channelsLast'),
    seed: options.seed,
  });
}

/**
 * Gaussian dropout (Srivastava et al. 2014, §10): y = x ⊙ ε, ε ~ N(1, σ²) with σ² = p/(1−p), the
 * variance of inverted Bernoulli dropout's multiplier; E[y] = x, Var[y] = x²·p/(1−p).
 */
export function gaussianDropout(x: tf.Tensor, rate: number, seed?: number): tf.Tensor {
  checkRate('ops.gaussianDropout', rate);
  checkOptionType('ops.gaussianDropout', 'seed', seed, 'number');
  if (rate === 0) return tf.clone(x);
  return tf.tidy(() =>
    tf.mul(x, tf.randomNormal(x.shape, 1, Math.sqrt(rate / (1 - rate)), 'float32', seed)),
  );
}

/** The constants of alpha dropout at drop rate q; see {@link alphaDropout}. */
export interface AlphaDropoutParams {
  /** α′ = −λα ≈ −1.7581: SELU's negative saturation value, given to dropped units. */
  alphaPrime: number;
  /** a = ((1−q)(1 + q·α′²))^(−1/2). */
  a: number;
  /** b = −a·q·α′. */
  b: number;
}

/**
 * Alpha-dropout affine constants (Klambauer et al. 2017, §"New Dropout Technique"): with dropped
 * units set to α′ = −λα, the variable d·x + (1−d)·α′ (d ~ Bernoulli(1−q)) of an input with mean 0
 * and variance 1 has mean q·α′ and variance (1−q)(1 + q·α′²); a·(·) + b restores mean 0 and
 * variance 1.
 */
export function alphaDropoutParams(rate: number): AlphaDropoutParams {
  const alphaPrime = -SELU_SCALE * SELU_ALPHA;
  const a = ((1 - rate) * (1 + rate * alphaPrime * alphaPrime)) ** -0.5;
  return { alphaPrime, a, b: -a * rate * alphaPrime };
}

/**
 * Alpha dropout (Klambauer et al. 2017): y = a·(x ⊙ d + α′·(1 − d)) + b, d ~ Bernoulli(1−q),
 * α′ = −λα. Keeps mean 0 and variance 1 of standard-normal (SELU fixed-point) inputs.
 * `tf.layers.alphaDropout` (tfjs 4.22) gives dropped units +λα instead, which shifts the mean
 * (by +0.32 at q = 0.1).
 */
export function alphaDropout(
  x: tf.Tensor,
  rate: number,
  options: { noiseShape?: readonly (number | null)[] | null; seed?: number } = {},
): tf.Tensor {
  checkRate('ops.alphaDropout', rate);
  checkOptionKeys('ops.alphaDropout', options, ALPHA_OPTIONS);
  if (rate === 0) return tf.clone(x);
  const { alphaPrime, a, b } = alphaDropoutParams(rate);
  return tf.tidy(() => {
    const shape = resolveNoiseShape(x.shape, options.noiseShape, 'ops.alphaDropout');
    const keep = keepMask(shape, rate, options.seed);
    // a·(x·d + α′(1−d)) + b = x·(a·d) + (a·α′·(1−d) + b): gradient a·d.
    const shift = tf.add(tf.mul(tf.sub(1, keep), a * alphaPrime), b);
    return tf.add(tf.mul(x, tf.mul(keep, a)), shift);
  });
}

/**
 * DropConnect (Wan et al. 2013) on a weight tensor: W ⊙ M / (1−p), M ~ Bernoulli(1−p) per entry,
 * so that E[W ⊙ M / (1−p)] = W and inference uses W itself.
 */
export function dropConnect(weights: tf.Tensor, rate: number, seed?: number): tf.Tensor {
  checkRate('ops.dropConnect', rate);
  checkOptionType('ops.dropConnect', 'seed', seed, 'number');
  if (rate === 0) return tf.clone(weights);
  return tf.tidy(() => tf.mul(weights, tf.div(keepMask(weights.shape, rate, seed), 1 - rate)));
}

/**
 * DropBlock's γ (Ghiasi et al. 2018, eq. 1), the Bernoulli rate of block seeds:
 *
 *   γ = p / b² · (H·W) / ((H − b + 1)(W − b + 1))
 *
 * (the paper writes it for a square map, feat_size²/(feat_size − b + 1)²). Seeds are drawn only
 * where a b×b block fits, (H−b+1)(W−b+1) positions, so γ·(H−b+1)(W−b+1)·b² = p·H·W: the expected
 * number of dropped units before block overlaps is p·H·W.
 */
export function dropBlockGamma(
  rate: number,
  blockSize: number,
  height: number,
  width: number,
): number {
  const valid = (height - blockSize + 1) * (width - blockSize + 1);
  return ((rate / (blockSize * blockSize)) * (height * width)) / valid;
}

/** Height and width of a rank-4 image tensor's shape. */
function spatialDims(shape: readonly number[], dataFormat: DataFormat): [number, number] {
  return dataFormat === 'channelsFirst' ? [shape[2], shape[3]] : [shape[1], shape[2]];
}

/**
 * DropBlock's keep mask (Ghiasi et al. 2018, Algorithm 1) for a rank-4 `shape`: block seeds
 * ~ Bernoulli(γ) at the (H−b+1)×(W−b+1) positions where a block fits inside the map, independently
 * per sample and channel; each seed zeroes the b×b block it anchors. Returns 1 for kept, 0 for
 * dropped, in the layout of `dataFormat`.
 */
export function dropBlockMask(
  shape: readonly number[],
  rate: number,
  blockSize: number,
  dataFormat: DataFormat = 'channelsLast',
  seed?: number,
): tf.Tensor {
  const [h, w] = spatialDims(shape, dataFormat);
  const n = shape[0];
  const c = dataFormat === 'channelsFirst' ? shape[1] : shape[3];
  const gamma = dropBlockGamma(rate, blockSize, h, w);
  return tf.tidy(() => {
    const seedShape = [n, h - blockSize + 1, w - blockSize + 1, c];
    const seeds = tf.cast(
      tf.less(tf.randomUniform(seedShape, 0, 1, 'float32', seed), gamma),
      'float32',
    ) as tf.Tensor4D;
    // Pad by b−1 on every side, then a b×b max with stride 1: output (i, j) is 1 iff a seed lies in
    // [i−b+1, i]×[j−b+1, j], i.e. the seed's block [s, s+b−1]² covers (i, j); blocks stay inside.
    const pad = blockSize - 1;
    const padded = tf.pad(seeds, [
      [0, 0],
      [pad, pad],
      [pad, pad],
      [0, 0],
    ]);
    const dropped = tf.maxPool(padded, blockSize, 1, 'valid');
    const keep = tf.sub(1, dropped);
    return dataFormat === 'channelsFirst' ? tf.transpose(keep, [0, 3, 1, 2]) : keep;
  });
}

/**
 * DropBlock (Ghiasi et al. 2018): drops contiguous b×b regions of each feature map and renormalizes,
 * y = x ⊙ M · count(M) / count_ones(M) (Algorithm 1, step 6; the count is over the whole batch).
 */
export function dropBlock2d(
  x: tf.Tensor,
  rate: number,
  blockSize: number,
  options: { dataFormat?: DataFormat; seed?: number } = {},
): tf.Tensor {
  const owner = 'ops.dropBlock2d';
  checkRate(owner, rate);
  checkOptionKeys(owner, options, DROP_BLOCK_OPTIONS);
  const layout =
    options.dataFormat === 'channelsFirst'
      ? '[batch, channels, height, width]'
      : '[batch, height, width, channels]';
  if (!(x instanceof tf.Tensor) || x.rank !== 4) {
    throw invalidArgument(
      owner,
      'x',
      x instanceof tf.Tensor ? `a tensor of shape ${JSON.stringify(x.shape)}` : x,
      `to be a rank-4 tensor ${layout}`,
    );
  }
  if (!(Number.isInteger(blockSize) && blockSize >= 1)) {
    throw invalidArgument(owner, 'blockSize', blockSize, 'to be a positive integer');
  }
  const [h, w] = spatialDims(x.shape, options.dataFormat ?? 'channelsLast');
  if (blockSize > Math.min(h, w)) {
    // No b×b block fits: γ's denominator (H−b+1)(W−b+1) is ≤ 0 and nothing would be dropped.
    throw invalidArgument(
      owner,
      'blockSize',
      blockSize,
      `to be at most the feature map's height and width (${h}×${w})`,
      `x has shape ${JSON.stringify(x.shape)} (${layout}). Use a smaller blockSize.`,
    );
  }
  if (rate === 0) return tf.clone(x);
  return tf.tidy(() => {
    const mask = dropBlockMask(x.shape, rate, blockSize, options.dataFormat, options.seed);
    const kept = tf.sum(mask);
    // Everything dropped leaves x ⊙ M = 0; max(kept, 1) keeps the scale finite then.
    const scale = tf.div(mask.size, tf.maximum(kept, 1));
    return tf.mul(x, tf.mul(mask, scale));
  });
}

/** Mask shape of DropPath: one draw per sample, `[N, 1, …, 1]`. */
export function samplewiseNoiseShape(shape: readonly number[]): number[] {
  return shape.map((d, i) => (i === 0 ? d : 1));
}

/**
 * DropPath / stochastic depth (Huang et al. 2016): each sample's whole input (a residual branch)
 * is dropped with probability p, y = x ⊙ m / (1−p) with one m ~ Bernoulli(1−p) per sample. Used
 * as `shortcut + dropPath(branch)`.
 */
export function dropPath(x: tf.Tensor, rate: number, seed?: number): tf.Tensor {
  checkRate('ops.dropPath', rate);
  checkOptionType('ops.dropPath', 'seed', seed, 'number');
  return dropout(x, rate, { noiseShape: samplewiseNoiseShape(x.shape), seed });
}
