/**
 * Group normalization as pure tensor functions (no state).
 *
 * Wu & He 2018, "Group Normalization" (arXiv:1803.08494), Eq. 1–3 with S_i the set of one sample's
 * positions in one group of C/G channels: μ_i = mean over S_i, σ²_i = biased variance over S_i,
 * x̂ = (x − μ_i)/√(σ²_i + ε), y = γ·x̂ + β per channel. G = 1 is layer normalization over every
 * non-batch axis (Ba et al. 2016); G = C is instance normalization (Ulyanov et al. 2016,
 * arXiv:1607.08022). The layout is Keras 3's `GroupNormalization._reshape_into_groups`
 * (keras/src/layers/normalization/group_normalization.py): the channel axis is split into
 * [G, C/G] and the statistics are reduced over every axis but the batch and the group axis.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * How a tensor is viewed for per-sample group statistics: `shape` is x's shape with the channel
 * axis split into [G, C/G] and the axes before the channel (P) and after it (Q) each merged into
 * one, unit axes left out; `axes` are the axes of `shape` reduced for the moments (all but the
 * batch axis and G); `affineShape` broadcasts a per-channel vector against `shape`.
 */
export interface GroupView {
  shape: number[];
  axes: number[];
  affineShape: number[];
  /** Elements per sample and group, |S_i| = (C/G)·(spatial size). */
  count: number;
}

/**
 * The {@link GroupView} of an input of shape `shape` normalized along the non-negative channel
 * `axis` (≥ 1) in `groups` groups (which must divide the channel count).
 */
export function groupView(shape: readonly number[], axis: number, groups: number): GroupView {
  const prod = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
  const batch = shape[0];
  const before = prod(shape.slice(1, axis));
  const channels = shape[axis];
  const after = prod(shape.slice(axis + 1));
  const perGroup = channels / groups;
  // [B, P, G, C/G, Q]; a unit P or Q is left out so the common layouts reduce contiguous axes:
  // channels-last [B, P, G, C/G] over (1, 3), channels-first [B, G, C/G, Q] over (2, 3).
  const dims: Array<{ size: number; role: 'batch' | 'group' | 'channel' | 'other' }> = [
    { size: batch, role: 'batch' },
    { size: before, role: 'other' },
    { size: groups, role: 'group' },
    { size: perGroup, role: 'channel' },
    { size: after, role: 'other' },
  ].filter((d) => d.role !== 'other' || d.size !== 1) as typeof dims;
  const viewShape = dims.map((d) => d.size);
  const axes = dims.flatMap((d, i) => (d.role === 'batch' || d.role === 'group' ? [] : [i]));
  const affineShape = dims.map((d) => (d.role === 'group' || d.role === 'channel' ? d.size : 1));
  return { shape: viewShape, axes, affineShape, count: perGroup * after * before };
}

/** Per-sample, per-group moments in the {@link GroupView}'s layout (keepDims). */
export interface GroupMoments {
  /** μ_i, shape `[B, 1, G, 1, …]` (the view's shape with reduced axes 1). */
  mean: tf.Tensor;
  /** The biased variance σ²_i = E[(x − μ_i)²] over the group's |S_i| elements. */
  variance: tf.Tensor;
}

/**
 * Per-sample group moments of `x` by two passes, μ = E[x] then σ² = E[(x−μ)²] (no cancellation
 * when |μ| ≫ σ), reduced over the group's channels and every non-batch axis.
 * @param axis the channel axis, non-negative and ≥ 1.
 */
export function groupMoments(x: tf.Tensor, axis: number, groups: number): GroupMoments {
  const view = groupView(x.shape, axis, groups);
  return tf.tidy(() => {
    const xv = tf.reshape(x, view.shape);
    const mean = tf.mean(xv, view.axes, true);
    const variance = tf.mean(tf.squaredDifference(xv, mean), view.axes, true);
    return { mean, variance };
  });
}

/**
 * Group normalization y = γ·(x − μ_i)/√(σ²_i + ε) + β (Wu & He 2018) with a fused analytic backward.
 * With N = |S_i|, x̂ the normalized input, g = γ·dy (the gradient of x̂) and, per sample and group,
 * ḡ = mean(g), m̂ = mean(x̂) (0 in exact arithmetic), k = mean(g·(x̂ − m̂)):
 *
 *   dx = (g − ḡ − (x̂ − m̂)·k) / √(σ²_i + ε),   dγ = Σ dy·x̂,  dβ = Σ dy   (γ, β sums per channel)
 *
 * This is the textbook dx = (g − ḡ − x̂·mean(g·x̂))/σ with x̂ replaced by its centred x̂ − m̂: the
 * two are equal in exact arithmetic, but when |μ| ≫ σ the rounded x̂ has a mean m̂ ≠ 0, and only
 * the centred form keeps Σ dx = 0 over each group (the output does not move when a group's inputs
 * shift together) to rounding. m̂ and k are per-group scalars, so the centring costs one reduction.
 *
 * @param x input of any rank ≥ 2, batch first.
 * @param gamma per-channel scale `[C]`, or null (scale off).
 * @param beta per-channel offset `[C]`, or null (center off).
 * @param axis the channel axis, non-negative and ≥ 1.
 * @param groups G, dividing the channel count x.shape[axis].
 */
export function groupNorm(
  x: tf.Tensor,
  gamma: tf.Tensor | null,
  beta: tf.Tensor | null,
  axis: number,
  groups: number,
  epsilon: number,
): tf.Tensor {
  const view = groupView(x.shape, axis, groups);
  const channelAxes = x.shape.map((_, a) => a).filter((a) => a !== axis);
  const positions = x.size / (x.shape[0] * x.shape[axis]);
  if (positions > 1 && (axis === x.rank - 1 || axis === 1)) {
    return groupNormByPositions(x, gamma, beta, axis === x.rank - 1, groups, epsilon);
  }
  return tf.tidy(() => {
    // The moments live outside the kernel (tensors created inside one cannot be saved for the
    // backward); their gradient is folded into dx, so they are not inputs of the gradient.
    const { mean, variance } = groupMoments(x, axis, groups);
    const invStd = tf.rsqrt(tf.add(variance, epsilon));
    const inputs: tf.Tensor[] = [x];
    if (gamma) inputs.push(gamma);
    if (beta) inputs.push(beta);
    const op = tf.customGrad((...args: unknown[]) => {
      const save = args.pop() as (tensors: tf.Tensor[]) => void;
      const xIn = args[0] as tf.Tensor;
      const g = gamma ? (args[1] as tf.Tensor) : null;
      const b = beta ? (args[gamma ? 2 : 1] as tf.Tensor) : null;
      const xv = tf.reshape(xIn, view.shape);
      let scale = invStd;
      let shift = tf.neg(tf.mul(mean, invStd));
      if (g) {
        // γ/σ and β − μ·γ/σ per sample and channel: one multiply-add over x.
        const gv = tf.reshape(g, view.affineShape);
        scale = tf.mul(scale, gv);
        shift = tf.mul(shift, gv);
      }
      if (b) shift = tf.add(shift, tf.reshape(b, view.affineShape));
      const value = tf.reshape(tf.add(tf.mul(xv, scale), shift), xIn.shape);
      save([xIn, mean, invStd, ...(g ? [g] : [])]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, mu, inv, gs] = saved;
          const xHatV = tf.mul(tf.sub(tf.reshape(xs, view.shape), mu), inv);
          const dyV = tf.reshape(dy, view.shape);
          const gV = gs ? tf.mul(dyV, tf.reshape(gs, view.affineShape)) : dyV;
          const gMean = tf.mean(gV, view.axes, true);
          const xHatMean = tf.mean(xHatV, view.axes, true);
          // k = mean(g·(x̂ − m̂)) = mean(g·x̂) − ḡ·m̂, all per-group scalars.
          const k = tf.sub(tf.mean(tf.mul(gV, xHatV), view.axes, true), tf.mul(gMean, xHatMean));
          // dx = (g − x̂·k − (ḡ − m̂·k))/σ.
          const offset = tf.sub(gMean, tf.mul(xHatMean, k));
          const dxV = tf.mul(tf.sub(tf.sub(gV, tf.mul(xHatV, k)), offset), inv);
          const grads = [tf.reshape(dxV, xs.shape)];
          const perChannel = (t: tf.Tensor) => tf.reshape(tf.sum(t, channelAxes), [-1]);
          if (gamma) grads.push(perChannel(tf.mul(dy, tf.reshape(xHatV, xs.shape))));
          if (beta) grads.push(perChannel(dy));
          return grads;
        },
      };
    });
    return (op as (...t: tf.Tensor[]) => tf.Tensor)(...inputs);
  });
}

/**
 * {@link groupNorm} for the two common layouts with positions: channels last ([B, P, C], the
 * channel axis last, rank ≥ 3) or channels first ([B, C, Q], the channel axis 1). The same math,
 * arranged for speed: every reduction is first a per-sample, per-channel sum over the positions
 * (channels-last: a batched [1, P]×[P, C] product with ones, since tfjs reduces a non-innermost
 * axis by transposing the whole tensor first; channels-first: an innermost sum), then summed over
 * each group's C/G channels (tiny tensors). In the backward γ factors out of those sums, and
 * dx = dy·(γ/σ) − x̂·a − b with per-sample, per-channel a and b.
 */
function groupNormByPositions(
  x: tf.Tensor,
  gamma: tf.Tensor | null,
  beta: tf.Tensor | null,
  channelsLast: boolean,
  groups: number,
  epsilon: number,
): tf.Tensor {
  const batch = x.shape[0];
  const channels = x.shape[channelsLast ? x.rank - 1 : 1];
  const positions = x.size / (batch * channels);
  const perGroup = channels / groups;
  const n = positions * perGroup;
  const rows = channelsLast ? [batch, positions, channels] : [batch, channels, positions];
  // Per-sample, per-channel values, broadcasting against `rows`.
  const coefficientShape = channelsLast ? [batch, 1, channels] : [batch, channels, 1];
  const affineShape = channelsLast ? [channels] : [1, channels, 1];
  return tf.tidy(() => {
    const ones = channelsLast ? tf.ones([batch, 1, positions]) : null;
    // Σ over positions: `rows` → `coefficientShape`.
    const positionSum = (t: tf.Tensor, o: tf.Tensor | null) =>
      o ? tf.matMul(o, tf.reshape(t, rows)) : tf.sum(tf.reshape(t, rows), 2, true);
    // Per-sample, per-channel → per-sample, per-group [B, G, 1].
    const groupSum = (t: tf.Tensor) => tf.sum(tf.reshape(t, [batch, groups, perGroup]), 2, true);
    // A per-group [B, G, 1] value as per channel (`coefficientShape`).
    const perChannel = (t: tf.Tensor) => tf.reshape(tf.tile(t, [1, 1, perGroup]), coefficientShape);
    const mean = tf.div(groupSum(positionSum(x, ones)), n);
    const meanC = perChannel(mean);
    // Two passes: the variance from the centred values (no cancellation when |μ| ≫ σ).
    const centred = tf.sub(tf.reshape(x, rows), meanC);
    const variance = tf.div(groupSum(positionSum(tf.square(centred), ones)), n);
    const invC = perChannel(tf.rsqrt(tf.add(variance, epsilon)));
    const inputs: tf.Tensor[] = [x];
    if (gamma) inputs.push(gamma);
    if (beta) inputs.push(beta);
    const op = tf.customGrad((...args: unknown[]) => {
      const save = args.pop() as (tensors: tf.Tensor[]) => void;
      const xIn = args[0] as tf.Tensor;
      const g = gamma ? tf.reshape(args[1] as tf.Tensor, affineShape) : null;
      const b = beta ? tf.reshape(args[gamma ? 2 : 1] as tf.Tensor, affineShape) : null;
      // y = x·s + t per sample and channel: s = γ/σ, t = β − μ·γ/σ.
      const s = g ? tf.mul(invC, g) : invC;
      let t = tf.neg(tf.mul(meanC, s));
      if (b) t = tf.add(t, b);
      const value = tf.reshape(tf.add(tf.mul(tf.reshape(xIn, rows), s), t), xIn.shape);
      save([xIn, meanC, invC, ...(ones ? [ones] : []), ...(gamma ? [args[1] as tf.Tensor] : [])]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, mu, inv] = saved;
          const o = ones ? saved[3] : null;
          const gs = gamma ? tf.reshape(saved[ones ? 4 : 3], affineShape) : null;
          const dyR = tf.reshape(dy, rows);
          const xHat = tf.mul(tf.sub(tf.reshape(xs, rows), mu), inv);
          const sumDy = positionSum(dyR, o);
          const sumDyXHat = positionSum(tf.mul(dyR, xHat), o);
          const sumXHat = positionSum(xHat, o);
          const withGamma = (v: tf.Tensor) => (gs ? tf.mul(v, gs) : v);
          // Per group: ḡ = mean(γ·dy), m̂ = mean(x̂), k = mean(γ·dy·x̂) − ḡ·m̂ (the centred form).
          const gMean = tf.div(groupSum(withGamma(sumDy)), n);
          const xHatMean = tf.div(groupSum(sumXHat), n);
          const k = tf.sub(tf.div(groupSum(withGamma(sumDyXHat)), n), tf.mul(gMean, xHatMean));
          const offset = tf.sub(gMean, tf.mul(xHatMean, k));
          // dx = (γ·dy − x̂·k − offset)/σ.
          const dyScale = gs ? tf.mul(inv, gs) : inv;
          const kC = tf.mul(perChannel(k), inv);
          const offC = tf.mul(perChannel(offset), inv);
          const dx = tf.sub(tf.mul(dyR, dyScale), tf.add(tf.mul(xHat, kC), offC));
          const grads = [tf.reshape(dx, xs.shape)];
          const overBatch = (v: tf.Tensor) => tf.reshape(tf.sum(v, 0), [channels]);
          if (gamma) grads.push(overBatch(sumDyXHat));
          if (beta) grads.push(overBatch(sumDy));
          return grads;
        },
      };
    });
    return (op as (...t: tf.Tensor[]) => tf.Tensor)(...inputs);
  });
}
