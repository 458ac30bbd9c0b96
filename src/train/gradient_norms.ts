/**
 * Per-layer gradient norms of a LayersModel: the vanishing/exploding-gradient diagnostic of
 * Glorot & Bengio (2010, "Understanding the difficulty of training deep feedforward neural
 * networks", §4.2), who compare ‖∂L/∂W⁽ˡ⁾‖ across layers l.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, invalidArgument, optionSpec } from '../errors';
import { withFrozenState } from './frozen_state';
import { l2Norm } from './norms';

/** A loss `(yTrue, yPred) → per-sample loss` (reduced by its mean), or the name of one. */
export type LossSpec =
  | ((yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor)
  | 'categoricalCrossentropy'
  | 'binaryCrossentropy'
  | 'meanSquaredError'
  | 'meanAbsoluteError';

const NAMED_LOSSES: Record<string, (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor> = {
  categoricalCrossentropy: tf.metrics.categoricalCrossentropy,
  binaryCrossentropy: tf.metrics.binaryCrossentropy,
  meanSquaredError: tf.metrics.meanSquaredError,
  meanAbsoluteError: tf.metrics.meanAbsoluteError,
};

/** Options of {@link gradientNorms}. */
export interface GradientNormsOptions {
  /**
   * The loss to differentiate: a function `(yTrue, yPred)` (its mean over all elements is taken) or
   * one of 'categoricalCrossentropy', 'binaryCrossentropy', 'meanSquaredError',
   * 'meanAbsoluteError'. Default: the loss the model was compiled with.
   */
  loss?: LossSpec;
  /**
   * Forward pass in training mode (default true): dropout drops, BatchNorm normalizes with the
   * batch's statistics, so the gradients are the ones `model.fit` would apply to this batch. The
   * state this pass updates (BatchNorm moving statistics, every non-trainable weight) is restored
   * afterwards. `false`: inference-mode forward (no dropout, BatchNorm uses moving statistics).
   */
  training?: boolean;
}

// The options of GradientNormsOptions and their types (tsc checks the two agree).
const GRADIENT_NORMS_OPTIONS = optionSpec<GradientNormsOptions>({
  loss: 'function|string',
  training: 'boolean',
});

/** Gradient norms of one layer's trainable weights. */
export interface LayerGradientNorm {
  /** Layer name. */
  layer: string;
  /** Layer class, e.g. 'Dense', 'DropnormBatchNorm'. */
  className: string;
  /** ‖∂L/∂kernel‖₂, or null when the layer has no trainable weight named 'kernel'. */
  kernel: number | null;
  /** ‖∂L/∂bias‖₂, or null when the layer has no trainable weight named 'bias'. */
  bias: number | null;
  /** ‖∂L/∂w‖₂ of every trainable weight of the layer, by short name ('kernel', 'gamma', …). */
  weights: Record<string, number>;
  /** ‖∂L/∂θ‖₂ over all of the layer's trainable weights θ together. */
  total: number;
}

function shortName(variable: tf.LayerVariable): string {
  const name = variable.originalName ?? variable.name;
  return name.slice(name.lastIndexOf('/') + 1).replace(/_\d+$/, '');
}

type LossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

// A Sequential keeps its compiled state on an inner functional model.
function compiledLosses(model: tf.LayersModel): LossFn[] | undefined {
  const inner = (model as { model?: tf.LayersModel }).model ?? model;
  return inner.lossFunctions;
}

/** Whether the loss takes class indices: tfjs's compiled `sparseCategoricalCrossentropy`. */
export function isSparseLoss(model: tf.LayersModel, loss: LossSpec | undefined): boolean {
  const fn = loss ?? compiledLosses(model)?.[0];
  return typeof fn === 'function' && fn.name === 'sparseCategoricalCrossentropy';
}

/** Resolves {@link LossSpec} (or the model's compiled loss) to a scalar-valued mean loss. */
export function resolveLoss(
  owner: string,
  model: tf.LayersModel,
  loss: LossSpec | undefined,
): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar {
  let fn: ((yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor) | undefined;
  if (typeof loss === 'function') fn = loss;
  else if (typeof loss === 'string') {
    fn = NAMED_LOSSES[loss];
    if (!fn) {
      throw invalidArgument(
        owner,
        'loss',
        loss,
        `to be a function (yTrue, yPred) => Tensor or one of ${Object.keys(NAMED_LOSSES).join(', ')}`,
      );
    }
  } else if (compiledLosses(model)?.length === 1) {
    fn = (compiledLosses(model) as LossFn[])[0];
  } else {
    throw invalidArgument(
      owner,
      'loss',
      loss,
      'to be given when the model is not compiled with a single loss',
      "Pass {loss: 'categoricalCrossentropy'} or a function (yTrue, yPred) => Tensor.",
    );
  }
  const lossFn = fn;
  return (yTrue, yPred) => tf.mean(lossFn(yTrue, yPred)) as tf.Scalar;
}

/** A shape as a message shows it: `[null,3]` → `[*, 3]`. */
function showShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d == null ? '*' : d)).join(', ')}]`;
}

/** The first axis of `t` is the batch axis: a rank-1 tensor counts as `[N, 1]`, as in model.fit. */
function asBatch(t: tf.Tensor): number[] {
  return t.rank === 1 ? [t.shape[0], 1] : t.shape;
}

/**
 * Checks a probe batch against `model` before any tensor is made, as `model.fit` does (tfjs-layers
 * `training.ts`, `standardizeUserDataXY`: `standardizeInputData` for x and y, then
 * `checkArrayLengths`): one x per model input and one y for the model's one output, every shape
 * equal to the model's where the model's is known (a rank-1 tensor counts as `[N, 1]`), and one
 * batch size for all of them. A sparse categorical loss takes targets `[…, 1]`, as in tfjs.
 * Without it a `[16, 3]` target for a `[16, 1]` output is silently broadcast into a `[16, 3]` loss.
 * @param owner who complains (`gradientNorms`, `GradientFlow`).
 * @param sparseTargets the loss takes class indices (`sparseCategoricalCrossentropy`).
 * @param inputsOnly check x alone (`activationStats`, which has no targets).
 */
export function checkProbeBatch(
  owner: string,
  model: tf.LayersModel,
  x: unknown,
  y: unknown,
  sparseTargets = false,
  inputsOnly = false,
): void {
  const isTensor = (t: unknown): t is tf.Tensor => t instanceof tf.Tensor;
  const xs = Array.isArray(x) ? x : [x];
  const inputs = model.inputs;
  if (!xs.every(isTensor) || xs.length !== inputs.length) {
    throw invalidArgument(
      owner,
      'x',
      xs.every(isTensor) ? `${xs.length} tensor(s)` : x,
      `to be ${inputs.length === 1 ? 'one tensor' : `an array of ${inputs.length} tensors`} (one per model input: ${inputs.map((i) => showShape(i.shape)).join(', ')})`,
    );
  }
  if (!inputsOnly && model.outputs.length !== 1) {
    throw invalidArgument(
      owner,
      'model outputs',
      model.outputs.length,
      'to be 1 (the loss is differentiated for one output)',
      'Build a model of the output to probe: tf.model({inputs: model.inputs, outputs: model.outputs[i]}).',
    );
  }
  if (!inputsOnly && !isTensor(y)) {
    throw invalidArgument(owner, 'y', y, 'to be one tensor of targets for the model output');
  }
  const pairs: [string, number[], (number | null)[]][] = xs.map(
    (t, i): [string, number[], (number | null)[]] => [
      xs.length === 1 ? 'x' : `x[${i}]`,
      asBatch(t),
      inputs[i].shape,
    ],
  );
  if (!inputsOnly) {
    const outShape = model.outputs[0].shape;
    const expected = sparseTargets ? [...outShape.slice(0, -1), 1] : outShape;
    pairs.push(['y', asBatch(y as tf.Tensor), expected]);
  }
  for (const [name, shape, want] of pairs) {
    const fits =
      shape.length === want.length && want.every((d, j) => j === 0 || d == null || d === shape[j]);
    if (!fits) {
      throw invalidArgument(
        owner,
        `${name} shape`,
        shape,
        `to be ${showShape(want)} (the model's ${name === 'y' ? 'output' : 'input'}, batch axis first)`,
        name === 'y'
          ? 'The loss would broadcast a mismatched target silently; model.fit refuses it too.'
          : undefined,
      );
    }
  }
  const batches = pairs.map(([, shape]) => shape[0]);
  if (new Set(batches).size > 1) {
    throw invalidArgument(
      owner,
      'batch sizes',
      Object.fromEntries(pairs.map(([name, shape]) => [name, shape[0]])),
      inputsOnly ? 'to be equal' : 'to be equal (one sample of y per sample of x)',
    );
  }
}

/**
 * `tf.variableGrads(f, variables)`, but an error thrown by `f` (a layer, or the loss) leaks
 * nothing. tfjs frees the tensors its gradient tape saved only at the end of a backward pass
 * (tfjs-core engine.ts `gradients`), so an error in the forward pass would leave every saved
 * activation behind (~40 tensors for a small MLP). On an error `f` returns a zero connected to
 * every variable instead, the (cheap) backward pass runs and frees the tape, and the error is
 * rethrown.
 */
export function variableGradsOrThrow(
  f: () => tf.Scalar,
  variables: tf.Variable[],
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  let failure: { error: unknown } | undefined;
  const result = tf.variableGrads(() => {
    try {
      return f();
    } catch (error) {
      failure = { error };
      return tf.addN(variables.map((v) => tf.sum(tf.mul(v, 0)))) as tf.Scalar;
    }
  }, variables);
  if (failure) {
    tf.dispose([result.value, ...Object.values(result.grads)]);
    throw failure.error;
  }
  return result;
}

/**
 * Per-layer L2 norms of the loss gradient with respect to each layer's trainable weights:
 * for layer l with kernel W⁽ˡ⁾ and bias b⁽ˡ⁾, `kernel = ‖∂L/∂W⁽ˡ⁾‖₂`, `bias = ‖∂L/∂b⁽ˡ⁾‖₂`, where
 * L = mean over the batch of `loss(y, model(x))`. Layers come in the model's order, input → output
 * (`model.layers`, topologically sorted for functional models); layers without trainable weights
 * are left out. Gradients come from `tf.variableGrads`.
 *
 * The model is not changed: weights are only read, and the training-mode forward pass (the
 * default, see {@link GradientNormsOptions.training}) has its state updates — BatchNorm moving
 * mean/variance and any other non-trainable weight — undone. With dropout in the model and
 * `training: true`, the norms depend on the random masks of this call, and a seeded dropout
 * layer's mask sequence (JS state, not a weight) moves on by one call.
 *
 * Norms are computed overflow-safe (‖g‖ = m·√Σ(g/m)², m = max|g|), so an exploding network reports
 * its huge norms instead of Infinity; a NaN/Infinity gradient gives a NaN/Infinity norm.
 */
export function gradientNorms(
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  y: tf.Tensor,
  options: GradientNormsOptions = {},
): LayerGradientNorm[] {
  const owner = 'gradientNorms';
  checkOptionKeys(owner, options, GRADIENT_NORMS_OPTIONS);
  const lossFn = resolveLoss(owner, model, options.loss);
  checkProbeBatch(owner, model, x, y, isSparseLoss(model, options.loss));
  const training = options.training ?? true;
  const layers = model.layers.filter((l) => l.trainable && l.trainableWeights.length > 0);
  if (layers.length === 0) {
    throw invalidArgument(owner, 'model', model.name, 'to have at least one trainable weight');
  }
  const weights = layers.map((l) => l.trainableWeights);
  const variables = weights.flat().map((w) => w.read() as tf.Variable);
  const norms = withFrozenState(model, () =>
    tf.tidy(() => {
      const { value, grads } = variableGradsOrThrow(
        () =>
          lossFn(y.rank === 1 ? tf.expandDims(y, 1) : y, model.apply(x, { training }) as tf.Tensor),
        variables,
      );
      value.dispose();
      const perVariable = variables.map((v) => l2Norm(grads[v.name]));
      return tf.stack(perVariable);
    }),
  );
  const values = norms.dataSync();
  norms.dispose();
  let k = 0;
  return layers.map((layer, i) => {
    const named: Record<string, number> = {};
    let sumSquares = 0;
    let maxNorm = 0;
    for (const w of weights[i]) {
      const norm = values[k++];
      named[shortName(w)] = norm;
      maxNorm = Math.max(maxNorm, Math.abs(norm));
      sumSquares += norm * norm;
    }
    // Overflow-safe in float64 too: rescale by the largest norm.
    const total =
      maxNorm > 0 && Number.isFinite(maxNorm)
        ? maxNorm * Math.sqrt(Object.values(named).reduce((s, n) => s + (n / maxNorm) ** 2, 0))
        : Math.sqrt(sumSquares);
    return {
      layer: layer.name,
      className: layer.getClassName(),
      kernel: named.kernel ?? null,
      bias: named.bias ?? null,
      weights: named,
      total,
    };
  });
}

/**
 * ‖∂L/∂W⁽¹⁾‖ / ‖∂L/∂W⁽ᴸ⁾‖: the first layer's kernel-gradient norm over the last layer's (layers
 * without a kernel are skipped). ≪ 1 means the gradient vanishes on its way to the input;
 * ≫ 1 that it explodes. NaN when fewer than two layers have a kernel.
 */
export function firstLastRatio(norms: readonly LayerGradientNorm[]): number {
  const kernels = norms.filter((n) => n.kernel !== null).map((n) => n.kernel as number);
  if (kernels.length < 2) return NaN;
  return kernels[0] / kernels[kernels.length - 1];
}
