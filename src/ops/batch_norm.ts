/**
 * Batch-normalization math as pure tensor functions (no state).
 *
 * Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network Training by Reducing
 * Internal Covariate Shift" (arXiv:1502.03167): Algorithm 1 (the training transform) and
 * Algorithm 2 (inference with population statistics, Var[x] = m/(m−1)·E_B[σ²_B]).
 */
import * as tf from '@tensorflow/tfjs';

/** Which variance feeds the running estimate: Bessel-corrected (the paper, PyTorch) or not (tfjs). */
export type VarianceCorrection = 'unbiased' | 'biased';

/** Axes reduced for per-channel statistics: every axis but `axis` (non-negative). */
export function reductionAxes(rank: number, axis: number): number[] {
  const axes: number[] = [];
  for (let i = 0; i < rank; i++) if (i !== axis) axes.push(i);
  return axes;
}

/** Shape `[1, …, C, …, 1]` that broadcasts a per-channel vector along `axis`. */
export function channelShape(shape: readonly number[], axis: number): number[] {
  return shape.map((d, i) => (i === axis ? d : 1));
}

/** m/(m−1): turns a biased variance over m elements into the unbiased estimate (Bessel). */
export function besselFactor(m: number): number {
  return m / (m - 1);
}

/** Batch moments of one channel layout; `mean` and `variance` keep dims to broadcast against x. */
export interface BatchMoments {
  mean: tf.Tensor;
  /** Biased batch variance σ²_B = E[(x−μ_B)²] over the elements that count. */
  variance: tf.Tensor;
  /**
   * m: elements reduced per channel. A number when every element counts (batch × spatial size,
   * known from the shape); under a mask, a keepDims tensor holding the number of unmasked elements.
   */
  count: number | tf.Tensor;
  /**
   * Under a mask only: 1 where an element counts and 0 where it is masked, with x's shape and 1
   * along the channel axis (see {@link maskWeights}).
   */
  weights?: tf.Tensor;
}

/**
 * Per-channel batch moments by two passes, μ = E[x] then σ² = E[(x−μ)²], which avoids the
 * catastrophic cancellation of E[x²]−E[x]² when |μ| ≫ σ.
 */
export function batchMoments(x: tf.Tensor, axes: number[]): BatchMoments {
  const [mean, variance] = tf.tidy(() => {
    const mu = tf.mean(x, axes, true);
    return [mu, tf.mean(tf.squaredDifference(x, mu), axes, true)];
  });
  const count = axes.reduce((m, a) => m * x.shape[a], 1);
  return { mean, variance, count };
}

/**
 * A layer mask (x's shape without the channel axis: `[batch, time]` for a `[batch, time,
 * channels]` input after `tf.layers.masking` or an embedding with `maskZero`) as float weights
 * w ∈ {0, 1} with a unit channel axis, so they broadcast against x.
 */
export function maskWeights(mask: tf.Tensor, axis: number): tf.Tensor {
  return tf.tidy(() => tf.expandDims(tf.cast(mask, 'float32'), axis));
}

/**
 * Per-channel moments over the unmasked elements only (Keras 3 `BatchNormalization._moments` with
 * a mask), by two passes: n = Σw, μ = Σw·x / n, σ² = Σw·(x−μ)² / n, w the {@link maskWeights}.
 * A channel with n = 0 gets μ = σ² = 0 (the divisor is max(n, 1); Keras adds 1e-7 instead), so the
 * forward pass stays finite; whether the statistics may feed the running averages is decided by
 * {@link usableChannels} from `count` = n.
 */
export function maskedBatchMoments(x: tf.Tensor, weights: tf.Tensor, axes: number[]): BatchMoments {
  const axis = x.shape.findIndex((_, a) => !axes.includes(a));
  const [mean, variance, count] = tf.tidy(() => {
    const n = tf.reshape(tf.sum(weights), new Array<number>(x.rank).fill(1));
    const divisor = tf.maximum(n, 1);
    if (axis === x.rank - 1) {
      // Channels last: the weighted sums over all positions are one [1, P]×[P, C] product, which
      // tfjs runs far faster than a broadcast multiply followed by a reduction.
      const channels = x.shape[axis];
      const x2 = tf.reshape(x, [-1, channels]);
      const w = tf.reshape(weights, [1, -1]);
      const shape = channelShape(x.shape, axis);
      const mu = tf.div(tf.reshape(tf.matMul(w, x2), shape), divisor);
      const centered = tf.squaredDifference(x2, tf.reshape(mu, [1, channels]));
      const s2 = tf.div(tf.reshape(tf.matMul(w, centered), shape), divisor);
      return [mu, s2, n];
    }
    const mu = tf.div(tf.sum(tf.mul(x, weights), axes, true), divisor);
    const s2 = tf.div(tf.sum(tf.mul(tf.squaredDifference(x, mu), weights), axes, true), divisor);
    return [mu, s2, n];
  });
  return { mean, variance, count, weights };
}

/**
 * The unbiased variance m/(m−1)·σ²_B (Bessel). With a tensor count (masked moments) the factor is
 * computed per channel; a count below 2 gives a non-finite value, which {@link usableChannels}
 * then rejects.
 */
export function unbiasedVariance(variance: tf.Tensor, count: number | tf.Tensor): tf.Tensor {
  if (typeof count === 'number') return tf.mul(variance, besselFactor(count));
  return tf.tidy(() => tf.div(tf.mul(variance, count), tf.sub(count, 1)));
}

/**
 * Which channels' batch statistics may enter the running averages (boolean, one per channel):
 * μ_B and the variance to be fed are both finite, and at least `minCount` elements counted
 * (2 for the unbiased variance, whose m/(m−1) is undefined at m = 1; 1 for the biased one).
 * Computed on the device: the training step never reads a tensor back.
 */
export function usableChannels(
  mean: tf.Tensor,
  variance: tf.Tensor,
  count: number | tf.Tensor,
  minCount: number,
): tf.Tensor {
  return tf.tidy(() => {
    const finite = tf.logicalAnd(tf.isFinite(mean), tf.isFinite(variance));
    if (typeof count === 'number') return count >= minCount ? finite : tf.zerosLike(finite);
    return tf.logicalAnd(finite, tf.greaterEqual(count, minCount));
  });
}

/**
 * One step of a running average, moving − (moving − value)·decay (tfjs's and Keras's update with
 * decay = 1 − momentum; 1/n for the n-th value of a cumulative average), applied only where
 * `usable` is true: every other channel keeps its old value bit for bit, even when `value` is NaN
 * or ±Infinity there (the selection, not arithmetic, discards it).
 */
export function guardedMovingAverage(
  moving: tf.Tensor,
  value: tf.Tensor,
  decay: number | tf.Tensor,
  usable: tf.Tensor,
): tf.Tensor {
  return tf.tidy(() =>
    tf.where(usable, tf.sub(moving, tf.mul(tf.sub(moving, value), decay)), moving),
  );
}

/**
 * The batch count of a cumulative average after one more batch: n + 1 when at least one channel
 * was usable, n when the whole batch was skipped (a scalar count cannot record a per-channel skip;
 * see BatchNorm's `momentum: null`).
 */
export function countUsableBatch(count: tf.Tensor, usable: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(count, tf.cast(tf.any(usable), count.dtype)));
}

/**
 * The training transform y = γ·(x−μ_B)/√(σ²_B+ε) + β with batch statistics, differentiated
 * analytically through the statistics (a fused backward, one pass over dy):
 *
 *   x̂ = (x−μ)/√(σ²+ε),  dβ = Σ dy,  dγ = Σ dy·x̂,
 *   dx = γ/√(σ²+ε) · (dy − w·(dβ + x̂·dγ)/n)            (sums over the reduced axes)
 *
 * Without a mask w = 1 and n = m. Under a mask (moments from {@link maskedBatchMoments}) every
 * position is still normalized, as in Keras 3, but μ and σ² depend only on the unmasked x, so
 * ∂μ/∂xᵢ = wᵢ/n and ∂σ²/∂xᵢ = 2wᵢ(xᵢ−μ)/n: the correction term reaches unmasked positions only,
 * while the sums dβ, dγ run over every position (each output depends on μ and σ²).
 *
 * `mean` and `variance` must be the biased moments of `x` over `axes` (keepDims); the gradient with
 * respect to them is already folded into dx, so they are not inputs of the gradient.
 * `gamma` and `beta` are per-channel vectors (or null for scale/center off).
 */
export function normalizeTraining(
  x: tf.Tensor,
  moments: BatchMoments,
  gamma: tf.Tensor | null,
  beta: tf.Tensor | null,
  epsilon: number,
  axis: number,
): tf.Tensor {
  const { mean, variance, count, weights } = moments;
  const axes = reductionAxes(x.rank, axis);
  const shape = channelShape(x.shape, axis);
  const lastAxis = axis === x.rank - 1;
  const inputs: tf.Tensor[] = [x];
  if (gamma) inputs.push(tf.reshape(gamma, shape));
  if (beta) inputs.push(tf.reshape(beta, shape));

  const op = tf.customGrad((...args: unknown[]) => {
    const save = args.pop() as (tensors: tf.Tensor[]) => void;
    const [xIn, g, b] = [
      args[0] as tf.Tensor,
      gamma ? (args[1] as tf.Tensor) : null,
      beta ? (args[gamma ? 2 : 1] as tf.Tensor) : null,
    ];
    let value: tf.Tensor;
    if (lastAxis) {
      // The fused kernel indexes its parameters along the last axis only (tfjs#1106).
      value = tf.batchNorm(xIn, mean, variance, b ?? undefined, g ?? undefined, epsilon);
    } else {
      const invStd = tf.rsqrt(tf.add(variance, epsilon));
      value = tf.mul(tf.sub(xIn, mean), g ? tf.mul(invStd, g) : invStd);
      if (b) value = tf.add(value, b);
    }
    // Save only tensors that exist outside this kernel; 1/√(σ²+ε) is per channel and cheap to redo.
    // Closure-held tensors die with the caller's tidy, so the mask's weights and count are saved too.
    const masked = weights ? [weights, count as tf.Tensor] : [];
    save([xIn, mean, variance, ...masked, ...(g ? [g] : [])]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, mu, v] = saved;
        const [w, n] = weights ? [saved[3], saved[4]] : [null, count];
        const gs = g ? saved[saved.length - 1] : null;
        const inv = tf.rsqrt(tf.add(v, epsilon));
        const xHat = tf.mul(tf.sub(xs, mu), inv);
        const dBeta = tf.sum(dy, axes, true);
        const dGamma = tf.sum(tf.mul(dy, xHat), axes, true);
        // A fully masked channel has w = 0 everywhere: max(n, 1) keeps 0/0 out of its dx.
        const m = typeof n === 'number' ? n : tf.maximum(n as tf.Tensor, 1);
        // Divide the per-channel sums, not the full-size tensor.
        const a = tf.div(dBeta, m);
        const b = tf.div(dGamma, m);
        let centered: tf.Tensor;
        if (!w) {
          centered = tf.add(a, tf.mul(xHat, b));
        } else if (lastAxis) {
          // w·a and w·b as [P, 1]×[1, C] outer products: cheaper than broadcast multiplies.
          const c = x.shape[axis];
          const col = tf.reshape(w, [-1, 1]);
          const wa = tf.matMul(col, tf.reshape(a, [1, c]));
          const wb = tf.matMul(col, tf.reshape(b, [1, c]));
          centered = tf.reshape(tf.add(wa, tf.mul(tf.reshape(xHat, [-1, c]), wb)), x.shape);
        } else {
          centered = tf.mul(tf.add(a, tf.mul(xHat, b)), w);
        }
        const dx = tf.mul(tf.sub(dy, centered), gs ? tf.mul(gs, inv) : inv);
        const grads = [dx];
        if (gamma) grads.push(dGamma);
        if (beta) grads.push(dBeta);
        return grads;
      },
    };
  });
  return (op as (...t: tf.Tensor[]) => tf.Tensor)(...inputs);
}

/**
 * The inference transform y = γ·(x−μ)/√(σ²+ε) + β with fixed (moving or population) statistics,
 * all per-channel vectors of length C. Along the last axis it is the same fused kernel the built-in
 * uses; along any other axis the parameters are broadcast explicitly (the fused kernel would apply
 * them along the last axis, tfjs#1106).
 */
export function normalizeInference(
  x: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  gamma: tf.Tensor | null,
  beta: tf.Tensor | null,
  epsilon: number,
  axis: number,
): tf.Tensor {
  if (axis === x.rank - 1) {
    return tf.batchNorm(x, mean, variance, beta ?? undefined, gamma ?? undefined, epsilon);
  }
  return tf.tidy(() => {
    const shape = channelShape(x.shape, axis);
    let scale = tf.rsqrt(tf.add(variance, epsilon));
    if (gamma) scale = tf.mul(scale, gamma);
    // (x−μ)·s rather than x·s − μ·s: no cancellation when |μ| ≫ σ.
    const y = tf.mul(tf.sub(x, tf.reshape(mean, shape)), tf.reshape(scale, shape));
    return beta ? tf.add(y, tf.reshape(beta, shape)) : y;
  });
}
