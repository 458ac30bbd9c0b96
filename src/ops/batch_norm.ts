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
  /**
   * The rounding error of `mean`: μ ≈ mean + meanResidual, the batch mean as an unevaluated sum of
   * two float32 numbers (keepDims). x − fl(μ) is off by μ − fl(μ), up to ulp(μ)/2, in every
   * element, which at 3e4 ± 1 is 1e-3 σ; summed over a batch it is what made Σdx ≠ 0 (issue 21).
   * {@link normalizeTraining} subtracts the residual per channel, after the scaling, in the forward
   * and in the backward. Absent in moments built by hand: then treated as 0.
   */
  meanResidual?: tf.Tensor;
}

/**
 * Per-channel batch moments by a shifted two-pass algorithm (Chan, Golub & LeVeque 1983,
 * "Algorithms for computing the sample variance"), with the mean kept to twice float32 precision:
 * with K the first element of each channel (of each group when `axes` leaves a group axis out),
 *
 *   δ = E[x − K],   σ² = E[((x − K) − δ)²],   mean = fl(K + δ),   meanResidual = (K + δ) − mean
 *
 * x − K is exact when |μ| ≫ σ (Sterbenz) and of the order of the spread otherwise (|x − K| is at
 * most the channel's range, ≤ 2√m·σ), so δ carries the digits of μ that fl(μ) drops, and no
 * E[x²]−E[x]² cancellation enters σ². A constant channel gives x − K = 0, so mean = K exactly,
 * r = σ² = 0 and x̂ = 0 (PyTorch issue 5410: constant channels at 1e7 must normalize to β).
 * The statistics are computed off the gradient tape (see untapedStatistics): one elementwise pass
 * more than E[x] then E[(x−μ)²] (x − K), with no tape copies.
 */
export function batchMoments(x: tf.Tensor, axes: number[]): BatchMoments {
  const count = axes.reduce((m, a) => m * x.shape[a], 1);
  const [mean, residual, variance] = untapedStatistics([x], (xs) => {
    if (isChannelsLast(xs.rank, axes)) {
      // One channel layout along the last axis: the per-channel sums are [1, P]×[P, C] products
      // and the per-channel subtraction a fused-kernel pass on cpu (see subtractChannels).
      const channels = xs.shape[xs.rank - 1];
      const x2 = tf.reshape(xs, [-1, channels]);
      const ones = tf.ones([1, x2.shape[0]]);
      const mean2 = (t: tf.Tensor) => tf.div(tf.matMul(ones, t), count);
      const k = tf.slice(x2, [0, 0], [1, channels]);
      const dev = subtractChannels(x2, k);
      const delta = mean2(dev);
      const s2 = mean2(squaredDeviation(dev, delta));
      const shape = channelShape(xs.shape, xs.rank - 1);
      return [...splitMean(k, delta), s2].map((t) => tf.reshape(t, shape));
    }
    // Summing, then dividing the per-channel sums: tf.mean divides every element first (cpu).
    const mean = (t: tf.Tensor) => tf.div(tf.sum(t, axes, true), count);
    const k = tf.slice(
      xs,
      xs.shape.map(() => 0),
      xs.shape.map((d, a) => (axes.includes(a) ? 1 : d)),
    );
    const dev = tf.sub(xs, k);
    const delta = mean(dev);
    return [...splitMean(k, delta), mean(tf.squaredDifference(dev, delta))];
  });
  return { mean, variance, count, meanResidual: residual };
}

/**
 * μ = K + δ as fl(K + δ) and its rounding error r = δ − (fl(K + δ) − K) (Dekker's Fast2Sum, exact
 * when |K| ≥ |δ|, i.e. whenever |μ| ≫ σ, the case where r matters; otherwise r is a rounding error
 * of a number of the order of σ and harmless).
 */
function splitMean(k: tf.Tensor, delta: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const mu = tf.add(k, delta);
  return [mu, tf.sub(delta, tf.sub(mu, k))];
}

/**
 * `f(...inputs)`, a list of per-channel tensors of one shape, computed inside a custom-gradient
 * kernel, where tfjs records no gradient tape. The batch statistics are not inputs of any
 * gradient ({@link normalizeTraining} folds their dependence on x into dx), so taping their
 * full-size ops would only cost: every taped op keeps clones of its inputs, a full copy each on
 * wasm.
 */
function untapedStatistics(
  inputs: tf.Tensor[],
  f: (...inputs: tf.Tensor[]) => tf.Tensor[],
): tf.Tensor[] {
  const op = tf.customGrad((...args: unknown[]) => {
    args.pop(); // save: nothing is needed, the gradient is zero
    const ins = args as tf.Tensor[];
    return {
      value: tf.stack(f(...ins)),
      gradFunc: () => ins.map((t) => tf.zeros(t.shape)),
    };
  });
  return tf.tidy(() => tf.unstack((op as (...t: tf.Tensor[]) => tf.Tensor)(...inputs)));
}

/** Every axis but the last is reduced: one channels-last layout, no group axis. */
function isChannelsLast(rank: number, axes: readonly number[]): boolean {
  return axes.length === rank - 1 && !axes.includes(rank - 1);
}

/**
 * x − v for a per-channel v (`[1, C]`, keepDims, or `[C]`) along the last axis. On the `cpu`
 * backend a broadcasting subtraction computes coordinates for every element and costs ~10× the
 * fused batch-norm kernel, which walks the channels with a counter; that kernel with unit variance
 * and ε = 0 computes exactly x − v ((x − v)·1/√1, in float64 on cpu, then rounded once). Elsewhere
 * a plain tf.sub is at least as fast.
 */
export function subtractChannels(x: tf.Tensor, v: tf.Tensor): tf.Tensor {
  if (tf.getBackend() !== 'cpu') return tf.sub(x, v);
  // Explicit offset and scale: under a gradient tape a missing kernel input breaks tf.grad.
  return tf.tidy(() => {
    const one = tf.onesLike(v);
    return tf.batchNorm(x, v, one, tf.zerosLike(v), one, 0);
  });
}

/** (x − v)² for a per-channel v along the last axis, as {@link subtractChannels}. */
function squaredDeviation(x: tf.Tensor, v: tf.Tensor): tf.Tensor {
  return tf.getBackend() === 'cpu' ? tf.square(subtractChannels(x, v)) : tf.squaredDifference(x, v);
}

/**
 * x·scale + shift with per-channel scale and shift along the last axis (either may be null), as
 * {@link subtractChannels}: the fused batch-norm kernel with zero mean and unit variance on `cpu`
 * (one pass, one rounding), broadcast tf.mul / tf.add elsewhere.
 */
function affineChannels(x: tf.Tensor, scale: tf.Tensor | null, shift: tf.Tensor | null): tf.Tensor {
  if (tf.getBackend() !== 'cpu') {
    const y = scale ? tf.mul(x, scale) : x;
    return shift ? tf.add(y, shift) : y;
  }
  return tf.tidy(() => {
    const zero = tf.zerosLike((scale ?? shift) as tf.Tensor);
    const one = tf.onesLike(zero);
    return tf.batchNorm(x, zero, one, shift ?? zero, scale ?? one, 0);
  });
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
 * a mask), n = Σw, μ = Σw·x / n, σ² = Σw·(x−μ)² / n, w the {@link maskWeights}, by the shifted
 * passes of {@link batchMoments} with the masked mean K = fl(Σw·x / n) as the shift: δ = Σw·(x−K)/n,
 * μ = K + δ, σ² = Σw·((x−K)−δ)²/n.
 * A channel with n = 0 gets μ = σ² = 0 (the divisor is max(n, 1); Keras adds 1e-7 instead), so the
 * forward pass stays finite; whether the statistics may feed the running averages is decided by
 * {@link usableChannels} from `count` = n. `axes` may leave out a leading group axis (Ghost
 * BatchNorm's virtual batches, see {@link virtualBatches}): the sums, and n, are then per group.
 */
export function maskedBatchMoments(x: tf.Tensor, weights: tf.Tensor, axes: number[]): BatchMoments {
  const channelsLastOnly = isChannelsLast(x.rank, axes);
  // Per group (Ghost BatchNorm) or per batch: the mask has no channel axis, so one count serves
  // every channel.
  const count = tf.sum(weights, axes, true);
  const divisor = tf.maximum(count, 1);
  // The shift K of batchMoments, here the masked mean itself (the first element may be padding,
  // far from the data): δ = Σw·(x − K)/n is then the rounding error of K.
  const [mean, residual, variance] = untapedStatistics([x, weights, divisor], (xs, ws, n) => {
    if (channelsLastOnly) {
      // Channels last: the weighted sums over all positions are one [1, P]×[P, C] product, which
      // tfjs runs far faster than a broadcast multiply followed by a reduction.
      const channels = xs.shape[xs.rank - 1];
      const x2 = tf.reshape(xs, [-1, channels]);
      const w = tf.reshape(ws, [1, -1]);
      const n2 = tf.reshape(n, [1, 1]);
      const weightedMean = (t: tf.Tensor) => tf.div(tf.matMul(w, t), n2);
      const k = weightedMean(x2);
      const dev = subtractChannels(x2, k);
      const delta = weightedMean(dev);
      const s2 = weightedMean(squaredDeviation(dev, delta));
      const shape = channelShape(xs.shape, xs.rank - 1);
      return [...splitMean(k, delta), s2].map((t) => tf.reshape(t, shape));
    }
    const weightedMean = (t: tf.Tensor) => tf.div(tf.sum(tf.mul(t, ws), axes, true), n);
    const k = weightedMean(xs);
    const dev = tf.sub(xs, k);
    const delta = weightedMean(dev);
    return [...splitMean(k, delta), weightedMean(tf.squaredDifference(dev, delta))];
  });
  divisor.dispose();
  return { mean, variance, count, weights, meanResidual: residual };
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

/** Options of {@link normalizeTraining}. */
export interface NormalizeTrainingOptions {
  /**
   * The axes the moments were reduced over (default: every axis but `axis`). Leaving out a leading
   * group axis normalizes each group (virtual batch) with its own moments; γ and β stay per channel.
   */
  axes?: number[];
  /**
   * Batch Renormalization: the reference statistics and limits r and d are computed from (see
   * {@link renormCorrection}); r and d are constants of the gradient.
   */
  renorm?: RenormReference;
}

/** What Batch Renormalization corrects the batch moments towards. */
export interface RenormReference {
  /** Reference mean μ, broadcastable against the moments (keepDims shape, or `[C]` channels-last). */
  mean: tf.Tensor;
  /** Reference variance σ², likewise. */
  variance: tf.Tensor;
  limits: RenormLimits;
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
 * With Batch Renormalization (`options.renorm`, Ioffe 2017, arXiv:1702.03275, Algorithm 1) the
 * output is y = γ·(x̂·r + d) + β, r and d held constant (stop_gradient): the upstream gradient of x̂ is γ·r·dy,
 * so dx = γ·r/√(σ²+ε) · (dy − w·(Σdy + x̂·Σdy·x̂)/n), dγ = Σ dy·(x̂·r + d) = r·Σdy·x̂ + d·Σdy, dβ = Σdy.
 * With groups (Ghost BatchNorm, `options.axes` without the group axis) every sum above is per
 * group, and dγ, dβ are then summed over the groups.
 *
 * Conditioning (issue 21). Every formula above is exact in real arithmetic, and Σ_b dx = 0 per
 * channel (and group) follows from Σ w·x̂ = 0, which holds only for the exact mean. In float32,
 * x̂' = (x − fl(μ))·s has Σ w·x̂' = n·r·s with r = μ − fl(μ), up to n·ulp(μ)/(2σ) — 1e-3·n at
 * 3e4 ± 1 — and the term x̂·Σdy·x̂/n carried that into Σdx (|Σdx|/Σ|dx| up to 1.5e-4, against the
 * built-in's ~2e-8, whose autodiff through tf.moments cancels the term). The moments carry r
 * ({@link BatchMoments.meanResidual}), and with c = r·s per channel the exact x̂ = x̂' − c enters
 * every formula through per-channel terms only:
 *
 *   Σdy·x̂ = Σdy·x̂' − c·Σdy,   a + x̂·b = (a − c·b) + x̂'·b   (a = Σdy/n, b = Σdy·x̂/n),
 *   forward: γ·x̂ + β = γ·x̂' + (β − γ·c)
 *
 * so Σ w·x̂ is rounding noise, |Σdx|/Σ|dx| is ~1e-8 on cpu and ~1e-7 on wasm (the built-in's
 * level; tested against a float64 reference in batch_norm_conditioning.test.ts), and the backward
 * keeps its cost (no extra full-size pass). A constant channel has fl(μ) = μ and r = σ² = 0, so
 * its output is β exactly (PyTorch issue 5410).
 *
 * `moments` must be the biased moments of `x` over the reduced axes (keepDims), as
 * {@link batchMoments} or {@link maskedBatchMoments} return them (moments without a residual are
 * taken as exact); the gradient with respect to them is already folded into dx, so they are not
 * inputs of the gradient. `gamma` and `beta` are per-channel vectors (or null for scale/center
 * off).
 */
export function normalizeTraining(
  x: tf.Tensor,
  moments: BatchMoments,
  gamma: tf.Tensor | null,
  beta: tf.Tensor | null,
  epsilon: number,
  axis: number,
  options: NormalizeTrainingOptions = {},
): tf.Tensor {
  const { mean, variance, count, weights } = moments;
  // μ = mean + residual (see BatchMoments.meanResidual); hand-built moments have no residual.
  const residual = moments.meanResidual ?? null;
  const renorm = options.renorm ?? null;
  const axes = options.axes ?? reductionAxes(x.rank, axis);
  // Axes neither reduced nor the channel: groups, each with its own moments.
  const groupAxes = x.shape.map((_, a) => a).filter((a) => a !== axis && !axes.includes(a));
  const grouped = groupAxes.length > 0;
  const shape = channelShape(x.shape, axis);
  // The fused kernel indexes its parameters along the last axis only (tfjs#1106), per channel only.
  const fused = axis === x.rank - 1 && !grouped;
  const inputs: tf.Tensor[] = [x];
  if (gamma) inputs.push(tf.reshape(gamma, shape));
  if (beta) inputs.push(tf.reshape(beta, shape));

  // The renorm inputs the backward needs: the reference statistics and any limit that is a tensor.
  const renormInputs = renorm ? [renorm.mean, renorm.variance, ...limitTensors(renorm.limits)] : [];
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args.pop() as (tensors: tf.Tensor[]) => void;
    const [xIn, g, b] = [
      args[0] as tf.Tensor,
      gamma ? (args[1] as tf.Tensor) : null,
      beta ? (args[gamma ? 2 : 1] as tf.Tensor) : null,
    ];
    // r and d are computed here, inside the kernel, where tfjs records no gradient tape (they are
    // constants of the gradient; taping their per-channel ops, each with clones of its inputs,
    // would cost more than the ops), and again in the backward from the saved inputs: a tensor
    // created in a kernel cannot be saved (tfjs would count it as leaked).
    const correction = renorm
      ? renormCorrection(moments, renorm.mean, renorm.variance, epsilon, renorm.limits)
      : null;
    // γ·(x̂·r + d) + β = x̂·(γ·r) + (γ·d + β): the correction only changes the per-channel affine.
    let scale = g;
    let shift = b;
    if (correction) {
      scale = g ? tf.mul(g, correction.r) : correction.r;
      const gd = g ? tf.mul(g, correction.d) : correction.d;
      shift = b ? tf.add(gd, b) : gd;
    }
    // y = (x − fl(μ))·s·γ' + β' − r·s·γ' with r = μ − fl(μ): the residual enters per channel,
    // after the scaling, through the shift (x − fl(μ) is exact when |μ| ≫ σ).
    const invStd = tf.rsqrt(tf.add(variance, epsilon));
    if (residual) {
      const rs = tf.mul(residual, scale ? tf.mul(invStd, scale) : invStd);
      shift = shift ? tf.sub(shift, rs) : tf.neg(rs);
    }
    let value: tf.Tensor;
    if (fused) {
      value = tf.batchNorm(xIn, mean, variance, shift ?? undefined, scale ?? undefined, epsilon);
    } else {
      value = tf.mul(tf.sub(xIn, mean), scale ? tf.mul(invStd, scale) : invStd);
      if (shift) value = tf.add(value, shift);
    }
    // Save only tensors that exist outside this kernel; 1/√(σ²+ε) is per channel and cheap to redo.
    // Closure-held tensors die with the caller's tidy, so the mean's residual, the mask's weights
    // and count, and the renorm reference statistics and ramped limits, are saved too.
    const masked = weights ? [weights, count as tf.Tensor] : [];
    const residuals = residual ? [residual] : [];
    save([xIn, mean, variance, ...residuals, ...masked, ...renormInputs, ...(g ? [g] : [])]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, mu, v] = saved;
        let next = 3;
        const res = residual ? saved[next++] : null;
        const [w, n] = weights ? [saved[next++], saved[next++]] : [null, count];
        let r: tf.Tensor | null = null;
        let d: tf.Tensor | null = null;
        if (renorm) {
          const reference = saved.slice(next, next + renormInputs.length);
          next += renormInputs.length;
          ({ r, d } = renormCorrection(
            { mean: mu, variance: v, count: 0 },
            reference[0],
            reference[1],
            epsilon,
            restoreLimits(renorm.limits, reference.slice(2)),
          ));
        }
        const gs = g ? saved[next] : null;
        const inv = tf.rsqrt(tf.add(v, epsilon));
        const c = x.shape[axis];
        // Along the last axis: x̂ in one fused-kernel pass, the per-channel sums as [1, P]×[P, C]
        // products (a reduction over leading axes transposes first on cpu).
        const onesRow = fused ? tf.ones([1, x.size / c]) : null;
        const sumOver = (t: tf.Tensor) =>
          onesRow
            ? tf.reshape(tf.matMul(onesRow, tf.reshape(t, [-1, c])), mu.shape)
            : tf.sum(t, axes, true);
        // x̂ as computed, (x − fl(μ))/√(σ²+ε): the fused kernel on cpu (one pass instead of two
        // indexed broadcasts); elsewhere sub and mul, which beat wasm's kernel (a sqrt per element).
        const xHat =
          fused && tf.getBackend() === 'cpu'
            ? tf.batchNorm(xs, mu, v, undefined, undefined, epsilon)
            : tf.mul(tf.sub(xs, mu), inv);
        // The exact x̂ is xHat − c, c = r/√(σ²+ε) per channel: Σ w·(xHat − c) = 0 to rounding,
        // where Σ w·xHat = n·c is what the backward must not assume away (issue 21). Substituted
        // into the per-channel terms, c costs no full-size pass:
        //   Σdy·x̂ = Σdy·xHat − c·Σdy,   a + x̂·b = (a − c·b) + xHat·b.
        const shiftC = res ? tf.mul(res, inv) : null;
        const sumDy = sumOver(dy);
        const rawDyXHat = sumOver(tf.mul(dy, xHat));
        const sumDyXHat = shiftC ? tf.sub(rawDyXHat, tf.mul(shiftC, sumDy)) : rawDyXHat;
        // A fully masked channel has w = 0 everywhere: max(n, 1) keeps 0/0 out of its dx.
        const m = typeof n === 'number' ? n : tf.maximum(n as tf.Tensor, 1);
        // Divide the per-channel sums, not the full-size tensor.
        const bb = tf.div(sumDyXHat, m);
        const a = shiftC ? tf.sub(tf.div(sumDy, m), tf.mul(shiftC, bb)) : tf.div(sumDy, m);
        let centered: tf.Tensor;
        if (!w) {
          centered = fused ? affineChannels(xHat, bb, a) : tf.add(a, tf.mul(xHat, bb));
        } else if (fused) {
          // w·(a + x̂·b): the per-channel affine in one pass, then w broadcast along the channels
          // as a [P, 1]×[1, C] outer product (cheaper than a broadcast multiply).
          const wFull = tf.matMul(tf.reshape(w, [-1, 1]), tf.ones([1, c]));
          const affine = tf.reshape(affineChannels(xHat, bb, a), [-1, c]);
          centered = tf.reshape(tf.mul(wFull, affine), x.shape);
        } else {
          centered = tf.mul(tf.add(a, tf.mul(xHat, bb)), w);
        }
        let dxScale = gs ? tf.mul(gs, inv) : inv;
        if (r) dxScale = tf.mul(dxScale, r);
        const dyMinus = tf.sub(dy, centered);
        const dx = fused ? affineChannels(dyMinus, dxScale, null) : tf.mul(dyMinus, dxScale);
        const perChannel = (t: tf.Tensor) => (grouped ? tf.sum(t, groupAxes, true) : t);
        const grads = [dx];
        if (gamma) {
          const dGamma = r && d ? tf.add(tf.mul(sumDyXHat, r), tf.mul(sumDy, d)) : sumDyXHat;
          grads.push(perChannel(dGamma));
        }
        if (beta) grads.push(perChannel(sumDy));
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

/**
 * Clipping of Batch Renormalization's correction, as tf.keras 2's `renorm_clipping`: r is clipped
 * to [rmin, rmax] and d to [−dmax, dmax]. A missing (or null) `rmax` or `dmax` is no limit; a
 * missing `rmin` is 1/rmax, the paper's [1/r_max, r_max] (tf.keras 2 used 0).
 */
export interface RenormClipping {
  /** Upper limit of r = σ_B/σ, ≥ 1 (the paper ends at 3). */
  rmax?: number | null;
  /** Lower limit of r, in [0, 1] (default 1/rmax). */
  rmin?: number | null;
  /** Limit of |d| = |μ_B − μ|/σ, ≥ 0 (the paper ends at 5). */
  dmax?: number | null;
}

/**
 * A step-based ramp of the renorm clipping (Ioffe 2017, Section 4: r_max = 1, d_max = 0 for the
 * first steps, i.e. plain BatchNorm, then relaxed linearly). At training step t (0-based):
 *
 *   f_r = clamp((t − start)/(rmaxEnd − start), 0, 1),  f_d = clamp((t − start)/(dmaxEnd − start), 0, 1)
 *   r_max(t) = 1 + (rmax − 1)·f_r,  r_min(t) = 1/r_max(t) (or 1 − (1 − rmin)·f_r when rmin is set),
 *   d_max(t) = dmax·f_d
 *
 * The paper's ImageNet schedule is `{start: 5000, rmaxEnd: 40000, dmaxEnd: 25000}` with
 * `renormClipping: {rmax: 3, dmax: 5}`.
 */
export interface RenormRamp {
  /** Steps run as plain BatchNorm (r_max = 1, d_max = 0) before the ramp starts (default 0). */
  start?: number;
  /** Step at which r_max reaches `renormClipping.rmax`. */
  rmaxEnd: number;
  /** Step at which d_max reaches `renormClipping.dmax` (default `rmaxEnd`). */
  dmaxEnd?: number;
}

/**
 * The clipping limits of one training step: r ∈ [rmin, rmax], d ∈ [−dmax, dmax]. Numbers
 * (Infinity: no limit) or scalar tensors (a ramp, computed on the device from the step counter).
 */
export interface RenormLimits {
  rmin: number | tf.Tensor;
  rmax: number | tf.Tensor;
  dmax: number | tf.Tensor;
}

/** Batch Renormalization's correction, per channel (and per virtual batch), keepDims. */
export interface RenormCorrection {
  /** r = σ_B/σ, clipped. */
  r: tf.Tensor;
  /** d = (μ_B − μ)/σ, clipped. */
  d: tf.Tensor;
}

/**
 * The limits of {@link RenormClipping} at a training step: fixed without a ramp; with a
 * {@link RenormRamp}, the ramped limits at `step` (0-based; a scalar tensor, so the training step
 * never reads the counter back to the CPU; null is step 0). The ramp needs finite `rmax` and
 * `dmax` (the values it ramps to); the caller checks that.
 */
export function renormLimits(
  clipping: RenormClipping,
  ramp: RenormRamp | null,
  step: tf.Tensor | number | null,
): RenormLimits {
  const rmax = clipping.rmax ?? Infinity;
  const dmax = clipping.dmax ?? Infinity;
  const rmin = clipping.rmin ?? null;
  if (!ramp) return { rmax, rmin: rmin ?? 1 / rmax, dmax };
  return tf.tidy(() => {
    const t = step ?? 0;
    const start = ramp.start ?? 0;
    const progress = (end: number) => tf.clipByValue(tf.div(tf.sub(t, start), end - start), 0, 1);
    const fr = progress(ramp.rmaxEnd);
    const fd = progress(ramp.dmaxEnd ?? ramp.rmaxEnd);
    const rmaxT = tf.add(1, tf.mul(rmax - 1, fr));
    const rminT = rmin === null ? tf.reciprocal(rmaxT) : tf.sub(1, tf.mul(1 - rmin, fr));
    return { rmax: rmaxT, rmin: rminT, dmax: tf.mul(dmax, fd) } as unknown as tf.TensorContainer;
  }) as unknown as RenormLimits;
}

const LIMIT_KEYS = ['rmin', 'rmax', 'dmax'] as const;

/** The limits that are tensors (a ramp), in {@link LIMIT_KEYS} order. */
function limitTensors(limits: RenormLimits): tf.Tensor[] {
  return LIMIT_KEYS.map((k) => limits[k]).filter((v): v is tf.Tensor => typeof v !== 'number');
}

/** `limits` with its tensor entries replaced, in order, by `tensors` (their saved copies). */
function restoreLimits(limits: RenormLimits, tensors: tf.Tensor[]): RenormLimits {
  let i = 0;
  const pick = (v: number | tf.Tensor) => (typeof v === 'number' ? v : tensors[i++]);
  return { rmin: pick(limits.rmin), rmax: pick(limits.rmax), dmax: pick(limits.dmax) };
}

/** t clipped to [lo, hi]; number limits that are infinite clip nothing. */
function clipBetween(t: tf.Tensor, lo: number | tf.Tensor, hi: number | tf.Tensor): tf.Tensor {
  // Fixed limits: one ClipByValue kernel (a training step runs this per BN, where tfjs's per-op
  // overhead is most of the cost of these per-channel tensors).
  if (typeof lo === 'number' && typeof hi === 'number') {
    return Number.isFinite(lo) || Number.isFinite(hi) ? tf.clipByValue(t, lo, hi) : t;
  }
  let out = t;
  if (typeof lo !== 'number' || Number.isFinite(lo)) out = tf.maximum(out, lo);
  if (typeof hi !== 'number' || Number.isFinite(hi)) out = tf.minimum(out, hi);
  return out;
}

/**
 * Batch Renormalization's correction (Ioffe 2017, arXiv:1702.03275, Algorithm 1) of batch moments
 * against reference statistics μ, σ² (the layer's renorm moving averages):
 *
 *   σ_B = √(σ²_B + ε),  σ = √(σ² + ε),
 *   r = clip(σ_B/σ, rmin, rmax),  d = clip((μ_B − μ)/σ, −dmax, dmax)
 *
 * with σ²_B the biased batch variance, as in the paper. Unclipped, x̂·r + d = (x − μ)/σ: the batch
 * is normalized with the reference statistics, while the gradient still flows through x̂ (r and d
 * are constants of the gradient, see {@link normalizeTraining}). `mean` and `variance` must
 * broadcast against the moments (keepDims shapes).
 */
export function renormCorrection(
  moments: BatchMoments,
  mean: tf.Tensor,
  variance: tf.Tensor,
  epsilon: number,
  limits: RenormLimits,
): RenormCorrection {
  const [r, d] = tf.tidy(() => {
    const invSigma = tf.rsqrt(tf.add(variance, epsilon));
    const sigmaB = tf.sqrt(tf.add(moments.variance, epsilon));
    const dmax = limits.dmax;
    const negDmax = typeof dmax === 'number' ? -dmax : tf.neg(dmax);
    return [
      clipBetween(tf.mul(sigmaB, invSigma), limits.rmin, limits.rmax),
      clipBetween(tf.mul(tf.sub(moments.mean, mean), invSigma), negDmax, dmax),
    ];
  });
  return { r, d };
}

/** A run of equal virtual batches: `groups` of `size` samples from sample `start` on. */
export interface VirtualBatchBlock {
  start: number;
  groups: number;
  size: number;
}

/**
 * How Ghost BatchNorm (Hoffer et al. 2017, arXiv:1705.08741) splits a batch of `batch` samples
 * into virtual batches of `size`: consecutive samples, ⌊batch/size⌋ full virtual batches, then
 * the remainder (batch mod size samples) as one smaller virtual batch. A batch of at most `size`
 * is one virtual batch (plain BatchNorm).
 */
export function virtualBatches(batch: number, size: number): VirtualBatchBlock[] {
  const full = Math.floor(batch / size);
  const remainder = batch - full * size;
  const blocks: VirtualBatchBlock[] = [];
  if (full > 0) blocks.push({ start: 0, groups: full, size });
  if (remainder > 0) blocks.push({ start: full * size, groups: 1, size: remainder });
  return blocks;
}

/**
 * The same virtual batches with each as its own block (`groups` = 1): Ghost BatchNorm's layout for
 * backends where G small fused passes cost less than one grouped pass over a `[G, V, …]` view.
 * Measured with `npm run bench` (layer train step, 4 virtual batches, relative to plain BN): on
 * `cpu` the grouped layout costs 1.31–1.48 × and one pass per virtual batch 1.10–1.19 ×; on `wasm`
 * the grouped layout costs 0.91–1.05 × and one pass per virtual batch 1.8–2.6 × (each kernel call
 * has a fixed cost there). The outputs are the same either way.
 */
export function oneBlockPerVirtualBatch(blocks: readonly VirtualBatchBlock[]): VirtualBatchBlock[] {
  return blocks.flatMap((b) =>
    Array.from({ length: b.groups }, (_, g) => ({
      start: b.start + g * b.size,
      groups: 1,
      size: b.size,
    })),
  );
}

/**
 * The statistics one Ghost BatchNorm step feeds to the running averages, pooled from its G virtual
 * batches: with m_g the elements per channel of virtual batch g and w_g = m_g if m_g ≥ minCount
 * (2 under 'unbiased', 1 under 'biased') else 0,
 *
 *   μ = Σ w_g·μ_g / Σ w_g,   σ² = Σ w_g·v_g / Σ w_g,   v_g = m_g/(m_g−1)·σ²_g ('unbiased') or σ²_g
 *
 * For equal virtual batches that is the plain mean of their means and of their (Bessel-corrected)
 * variances (tf.keras 2's update); a smaller remainder, or a mask, weighs each by its element
 * count, and a virtual batch too small for the variance (a remainder of one) is left out.
 *
 * @param means per virtual batch and channel, `[G, C]`.
 * @param variances biased, `[G, C]`.
 * @param counts m_g: numbers (known from the shapes) or, under a mask, a `[G, 1]` tensor.
 * @returns per-channel `mean` and fed `variance` (`[C]`), and `count` = Σ w_g, the number to test
 *   against minCount in {@link usableChannels} (0 when no virtual batch qualifies).
 */
export function poolVirtualBatchStatistics(
  means: tf.Tensor,
  variances: tf.Tensor,
  counts: readonly number[] | tf.Tensor,
  correction: VarianceCorrection,
): { mean: tf.Tensor; variance: tf.Tensor; count: number | tf.Tensor } {
  const minCount = correction === 'unbiased' ? 2 : 1;
  const channels = means.shape[1] as number;
  if (!(counts instanceof tf.Tensor)) {
    const w = counts.map((m) => (m >= minCount ? m : 0));
    const total = w.reduce((s, v) => s + v, 0);
    if (total === 0) {
      return { mean: tf.zeros([channels]), variance: tf.zeros([channels]), count: 0 };
    }
    const meanWeights = w.map((v) => v / total);
    const varianceWeights = meanWeights.map((v, g) =>
      v > 0 && correction === 'unbiased' ? v * besselFactor(counts[g]) : v,
    );
    return tf.tidy(() => {
      const row = (values: number[]) => tf.tensor2d(values, [1, values.length]);
      return {
        mean: tf.reshape(tf.matMul(row(meanWeights), means), [channels]),
        variance: tf.reshape(tf.matMul(row(varianceWeights), variances), [channels]),
        count: total,
      };
    }) as { mean: tf.Tensor; variance: tf.Tensor; count: number };
  }
  return tf.tidy(() => {
    const m = counts;
    const qualifies = tf.greaterEqual(m, minCount);
    const w = tf.where(qualifies, m, tf.zerosLike(m));
    const total = tf.sum(w);
    const divisor = tf.maximum(total, 1);
    // m/(m−1) only where m ≥ 2; a left-out virtual batch gets weight 0, never 0·∞.
    const factor =
      correction === 'unbiased'
        ? tf.where(qualifies, tf.div(m, tf.maximum(tf.sub(m, 1), 1)), tf.zerosLike(m))
        : tf.onesLike(m);
    return {
      mean: tf.div(tf.sum(tf.mul(means, w), 0), divisor),
      variance: tf.div(tf.sum(tf.mul(variances, tf.mul(w, factor)), 0), divisor),
      count: tf.reshape(total, [1]),
    };
  }) as { mean: tf.Tensor; variance: tf.Tensor; count: tf.Tensor };
}
