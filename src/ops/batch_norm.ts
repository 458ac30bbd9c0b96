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
  /** Biased batch variance σ²_B = E[(x−μ_B)²]. */
  variance: tf.Tensor;
  /** m: elements reduced per channel (batch × spatial size). */
  count: number;
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
 * The training transform y = γ·(x−μ_B)/√(σ²_B+ε) + β with batch statistics, differentiated
 * analytically through the statistics (a fused backward, one pass over dy):
 *
 *   x̂ = (x−μ)/√(σ²+ε),  dβ = Σ dy,  dγ = Σ dy·x̂,
 *   dx = γ/√(σ²+ε) · (dy − dβ/m − x̂·dγ/m)            (sums over the reduced axes)
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
  const { mean, variance, count } = moments;
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
    save(g ? [xIn, mean, variance, g] : [xIn, mean, variance]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, mu, v, gs] = saved;
        const inv = tf.rsqrt(tf.add(v, epsilon));
        const xHat = tf.mul(tf.sub(xs, mu), inv);
        const dBeta = tf.sum(dy, axes, true);
        const dGamma = tf.sum(tf.mul(dy, xHat), axes, true);
        const centered = tf.add(tf.div(dBeta, count), tf.mul(xHat, tf.div(dGamma, count)));
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
