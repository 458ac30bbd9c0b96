/**
 * Overflow-safe L2 norms. ‖g‖ = m·√Σ(g/m)² with m = max|g| (LAPACK's `snrm2` idea): the plain
 * √Σg² overflows float32 once Σg² > 3.4e38, i.e. for norms above ~1.8e19, which is exactly what an
 * exploding network produces. A zero tensor has norm 0; a non-finite element gives a non-finite norm.
 */
import * as tf from '@tensorflow/tfjs';

/** ‖x‖₂ over all elements, as a scalar tensor (overflow-safe). */
export function l2Norm(x: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const m = tf.max(tf.abs(x));
    const safe = tf.where(tf.greater(m, 0), m, tf.onesLike(m));
    const scaled = tf.sqrt(tf.sum(tf.square(tf.div(x, safe))));
    return tf.mul(m, scaled) as tf.Scalar;
  });
}

/** ‖(x₁, …, xₙ)‖₂ = √Σᵢ‖xᵢ‖², the global norm of a list (overflow-safe); 0 for an empty list. */
export function globalNorm(xs: readonly tf.Tensor[]): tf.Scalar {
  if (xs.length === 0) return tf.scalar(0);
  return tf.tidy(() => l2Norm(tf.stack(xs.map((x) => l2Norm(x)))));
}
