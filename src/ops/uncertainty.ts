/**
 * Uncertainty summaries of Monte-Carlo predictions of a classifier, in nats (natural logarithm):
 *
 *   predictive entropy  H[ȳ] = −Σ_c ȳ_c log ȳ_c,   ȳ = (1/T) Σ_t y_t          (total uncertainty)
 *   expected entropy    E_t H[y_t] = (1/T) Σ_t −Σ_c y_tc log y_tc            (aleatoric part)
 *   mutual information  I = H[ȳ] − E_t H[y_t] ≥ 0                            (epistemic part)
 *
 * The mutual information between the prediction and the model parameters is BALD's acquisition
 * function (Houlsby et al. 2011, "Bayesian Active Learning for Classification and Preference
 * Learning", arXiv:1112.5745; with MC dropout: Gal, Islam & Ghahramani 2017, "Deep Bayesian Active
 * Learning with Image Data", arXiv:1703.02910, eq. 3). It is large when the passes disagree
 * confidently, and 0 when every pass gives the same distribution.
 *
 * `'categorical'` probabilities are distributions along the last axis (a softmax output);
 * `'binary'` ones are independent Bernoulli probabilities, one per element (a sigmoid output),
 * with H[p] = −p log p − (1−p) log(1−p). 0·log 0 is 0.
 */
import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';

/**
 * How a classifier's output holds probabilities: `'categorical'` (softmax: a distribution along the
 * last axis) or `'binary'` (sigmoid: one Bernoulli probability per element).
 */
export type ProbabilityKind = 'categorical' | 'binary';

/** p·log p with 0·log 0 = 0 (log of the smallest normal float32 above 0 keeps 0·log finite). */
function pLogP(p: tf.Tensor): tf.Tensor {
  return tf.mul(p, tf.log(tf.maximum(p, 1e-37)));
}

function checkKind(owner: string, kind: unknown): ProbabilityKind {
  if (kind !== 'categorical' && kind !== 'binary') {
    throw invalidArgument(
      owner,
      'kind',
      kind,
      "to be 'categorical' or 'binary'",
      "'categorical' for a softmax output (classes on the last axis), 'binary' for a sigmoid output.",
    );
  }
  return kind;
}

/** Checks `kind` and the stacked passes `samples` of a function named `owner`. */
function checkSamples(owner: string, samples: tf.Tensor, kind: unknown): void {
  checkKind(owner, kind);
  const minRank = kind === 'categorical' ? 2 : 1;
  if (!(samples instanceof tf.Tensor) || samples.rank < minRank) {
    throw invalidArgument(
      owner,
      'samples',
      samples instanceof tf.Tensor ? `a tensor of shape ${JSON.stringify(samples.shape)}` : samples,
      kind === 'categorical'
        ? 'to be a tensor [T, …, classes] of T stacked probability outputs'
        : 'to be a tensor [T, …] of T stacked probability outputs',
      'Stack the passes on a new first axis, e.g. tf.stack(passes), or use mcPredict.',
    );
  }
}

// How far a float32 probability may stray: softmax rows sum to 1 within ~1e-6 for thousands of
// classes; logits or unnormalized scores miss by far more.
const PROBABILITY_TOLERANCE = 1e-3;

/**
 * Entropy H[p] in nats: `'categorical'` −Σ_c p_c log p_c over the last axis (the result drops that
 * axis); `'binary'` −p log p − (1−p) log(1−p) per element (same shape). 0·log 0 = 0.
 *
 * `probs` must hold probabilities. What is visible from the tensor itself is an error: a non-float
 * dtype, a scalar, or a categorical last axis of 1 (a sigmoid output: use `'binary'`). Values are
 * checked on the device, without a read: an entry outside [0, 1] (logits, scores) or a categorical
 * row whose sum is not 1 (±1e-3) gives NaN for its entropy, never a plausible-looking number.
 */
export function entropy(probs: tf.Tensor, kind: ProbabilityKind = 'categorical'): tf.Tensor {
  const owner = 'entropy';
  checkKind(owner, kind);
  if (!(probs instanceof tf.Tensor) || probs.dtype !== 'float32' || probs.rank === 0) {
    throw invalidArgument(
      owner,
      'probs',
      probs instanceof tf.Tensor
        ? `a ${probs.dtype} tensor of shape ${JSON.stringify(probs.shape)}`
        : probs,
      'to be a float32 tensor of probabilities (rank ≥ 1)',
      'Pass a softmax or sigmoid output, e.g. tf.softmax(logits).',
    );
  }
  if (kind === 'categorical' && probs.shape[probs.rank - 1] === 1) {
    throw invalidArgument(
      owner,
      'probs',
      `a tensor of shape ${JSON.stringify(probs.shape)}`,
      "to have ≥ 2 classes on the last axis for kind 'categorical'",
      "One probability per sample is a sigmoid output: use kind 'binary'.",
    );
  }
  return tf.tidy(() => {
    const t = PROBABILITY_TOLERANCE;
    const inRange = tf.logicalAnd(tf.greaterEqual(probs, -t), tf.lessEqual(probs, 1 + t));
    if (kind === 'categorical') {
      const valid = tf.logicalAnd(
        tf.all(inRange, -1),
        tf.lessEqual(tf.abs(tf.sub(tf.sum(probs, -1), 1)), t),
      );
      const h = tf.neg(tf.sum(pLogP(tf.clipByValue(probs, 0, 1)), -1));
      return tf.where(valid, h, tf.fill(h.shape, NaN));
    }
    const p = tf.clipByValue(probs, 0, 1);
    const h = tf.neg(tf.add(pLogP(p), pLogP(tf.sub(1, p))));
    return tf.where(inRange, h, tf.fill(h.shape, NaN));
  });
}

/** Predictive entropy H[ȳ] of T stacked passes `samples` (shape `[T, …]`): the entropy of their mean. */
export function predictiveEntropy(
  samples: tf.Tensor,
  kind: ProbabilityKind = 'categorical',
): tf.Tensor {
  checkSamples('predictiveEntropy', samples, kind);
  return tf.tidy(() => entropy(tf.mean(samples, 0), kind));
}

/** Expected entropy (1/T) Σ_t H[y_t] of T stacked passes `samples` (shape `[T, …]`). */
export function expectedEntropy(
  samples: tf.Tensor,
  kind: ProbabilityKind = 'categorical',
): tf.Tensor {
  checkSamples('expectedEntropy', samples, kind);
  return tf.tidy(() => tf.mean(entropy(samples, kind), 0));
}

/**
 * Mutual information H[ȳ] − E_t H[y_t] (BALD) from the two entropies, clamped at 0: it is ≥ 0
 * (Jensen: entropy is concave), and float32 rounding may otherwise give −1e-7 for identical passes.
 */
export function mutualInformationFromEntropies(
  predictive: tf.Tensor,
  expected: tf.Tensor,
): tf.Tensor {
  return tf.tidy(() => tf.relu(tf.sub(predictive, expected)));
}

/** Mutual information (BALD) H[ȳ] − (1/T) Σ_t H[y_t] of T stacked passes `samples` (shape `[T, …]`). */
export function mutualInformation(
  samples: tf.Tensor,
  kind: ProbabilityKind = 'categorical',
): tf.Tensor {
  checkSamples('mutualInformation', samples, kind);
  return tf.tidy(() =>
    mutualInformationFromEntropies(
      predictiveEntropy(samples, kind),
      expectedEntropy(samples, kind),
    ),
  );
}
