/**
 * Root-mean-square layer normalization as a pure tensor function (no state).
 *
 * Zhang & Sennrich 2019, "Root Mean Square Layer Normalization" (arXiv:1910.07467), Eq. 4:
 * ȳ = x / RMS(x) · g with RMS(x) = √(mean(x²)), computed as Keras 3's `ops.rms_normalization`
 * (keras/src/ops/nn.py): x · rsqrt(mean(x², axes) + ε) · scale.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * RMS normalization y = x · r · s with r = 1/√(mean(x², axes) + ε) (Zhang & Sennrich 2019), with a
 * fused analytic backward. With g = s·dy and N the elements reduced per position:
 *
 *   ∂r/∂x_j = −r³·x_j/N,  so  dx = r·(g − x·r²·mean(g·x)),   ds = Σ dy·x·r   (over the other axes)
 *
 * Unlike layer normalization there is no centring, so Σ dx is not 0 (the output moves when the
 * inputs shift together).
 * @param x input of any rank.
 * @param scale the learned scale, of x's sizes along `axes` (in increasing axis order), or null.
 * @param axes the reduced axes, non-negative, sorted, distinct.
 */
export function rmsNorm(
  x: tf.Tensor,
  scale: tf.Tensor | null,
  axes: readonly number[],
  epsilon: number,
): tf.Tensor {
  const reduced = [...axes];
  const others = x.shape.map((_, a) => a).filter((a) => !reduced.includes(a));
  // Trailing axes broadcast as they are; otherwise the scale needs x's rank with unit axes.
  const trailing = reduced.every((a, i) => a === x.rank - reduced.length + i);
  const scaleShape = x.shape.map((d, a) => (reduced.includes(a) ? d : 1));
  const along = (s: tf.Tensor) => (trailing ? s : tf.reshape(s, scaleShape));
  return tf.tidy(() => {
    // r lives outside the kernel (a tensor created inside one cannot be saved for the backward);
    // its gradient is folded into dx.
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(x), reduced, true), epsilon));
    const inputs: tf.Tensor[] = scale ? [x, scale] : [x];
    const op = tf.customGrad((...args: unknown[]) => {
      const save = args.pop() as (tensors: tf.Tensor[]) => void;
      const xIn = args[0] as tf.Tensor;
      const s = scale ? (args[1] as tf.Tensor) : null;
      const normalized = tf.mul(xIn, r);
      const value = s ? tf.mul(normalized, along(s)) : normalized;
      save([xIn, r, ...(s ? [s] : [])]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, rs, ss] = saved;
          const g = ss ? tf.mul(dy, along(ss)) : dy;
          // r²·mean(g·x) per position, then dx = r·g − x·(r³·mean(g·x)).
          const k = tf.mul(tf.mul(tf.square(rs), rs), tf.mean(tf.mul(g, xs), reduced, true));
          const dx = tf.sub(tf.mul(g, rs), tf.mul(xs, k));
          if (!ss) return [dx];
          const dScale = tf.reshape(tf.sum(tf.mul(dy, tf.mul(xs, rs)), others), ss.shape);
          return [dx, dScale];
        },
      };
    });
    return (op as (...t: tf.Tensor[]) => tf.Tensor)(...inputs);
  });
}
