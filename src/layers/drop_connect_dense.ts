import * as tf from '@tensorflow/tfjs';
import { KERAS_OBJECT, OptionSpec, invalidArgument, optionSpec } from '../errors';
import { dropConnect } from '../ops/dropout';
import { mixSeed } from '../random';
import {
  Constraint,
  Initializer,
  Regularizer,
  getConstraint,
  getInitializer,
  getRegularizer,
  serializeKerasObject,
} from './keras_objects';
import { StochasticLayer, StochasticLayerArgs } from './stochastic';
import { Kwargs, singleShape, singleTensor } from './util';

type BuiltinDenseArgs = NonNullable<Parameters<typeof tf.layers.dense>[0]>;

/** Arguments of {@link DropConnectDense}: every argument of `tf.layers.dense`, plus the dropout ones. */
export interface DropConnectDenseArgs extends BuiltinDenseArgs, StochasticLayerArgs {
  /** Also drop bias entries (default false: Wan et al. 2013 drop the weights only). */
  dropBias?: boolean;
}

/** A tf.layers activation function object ('relu', 'linear', …). */
interface ActivationFn {
  apply(x: tf.Tensor): tf.Tensor;
  getClassName(): string;
}

/** The activation object tf.layers registers under `identifier` ('linear' when absent). */
function getActivation(owner: string, identifier: unknown): ActivationFn {
  if (identifier != null && typeof identifier === 'object' && 'apply' in identifier) {
    return identifier as ActivationFn;
  }
  const name = identifier == null ? 'linear' : String(identifier);
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[name];
  if (entry == null) {
    throw invalidArgument(
      owner,
      'activation',
      identifier,
      "to be a tf.layers activation name such as 'relu', 'sigmoid', 'tanh' or 'linear'",
    );
  }
  const [cls, fromConfig] = entry;
  return fromConfig(cls, {}) as unknown as ActivationFn;
}

/**
 * DropConnect (Wan et al. 2013, "Regularization of Neural Networks using DropConnect", ICML) on a
 * dense layer: at each training call every kernel entry (and bias entry, with `dropBias`) is zeroed
 * with probability p = `rate`, with inverted scaling so the expected weights are the weights:
 *
 *   training:  y = act(x · (W ⊙ M / (1−p)) + b),  M ~ Bernoulli(1−p) per entry, new each call;
 *   inference: y = act(x · W + b), exactly `tf.layers.dense`.
 *
 * (The paper's inference averages a Gaussian moment-matched approximation; the inverted-scaling
 * mean network used here is the common simplification, as for dropout.) Weights are
 * `[kernel, bias]` with the shapes and names of `tf.layers.dense`, so `setWeights` works both
 * ways. One mask per call is shared by the whole batch (the paper draws one per sample; the
 * shared mask costs one matMul instead of a batched one).
 */
export class DropConnectDense extends StochasticLayer {
  /** Serialization name of the pack's DropConnect dense layer. */
  static className = 'DropnormDropConnectDense';
  /**
   * Constructor arguments: {@link StochasticLayer.argTypes}, every argument of
   * `tf.layers.dense`, and `dropBias`.
   */
  static override readonly argTypes: OptionSpec = {
    ...StochasticLayer.argTypes,
    ...optionSpec<Omit<DropConnectDenseArgs, keyof StochasticLayerArgs>>({
      units: 'number',
      activation: KERAS_OBJECT,
      useBias: 'boolean',
      kernelInitializer: KERAS_OBJECT,
      biasInitializer: KERAS_OBJECT,
      inputDim: 'integer|null',
      kernelConstraint: KERAS_OBJECT,
      biasConstraint: KERAS_OBJECT,
      kernelRegularizer: KERAS_OBJECT,
      biasRegularizer: KERAS_OBJECT,
      activityRegularizer: KERAS_OBJECT,
      dropBias: 'boolean',
    }),
  };
  static override readonly acceptedArgs: readonly string[] = Object.keys(DropConnectDense.argTypes);

  readonly units: number;
  readonly useBias: boolean;
  readonly dropBias: boolean;
  private readonly activation: ActivationFn;
  private readonly kernelInitializer: Initializer;
  private readonly biasInitializer: Initializer;
  private readonly kernelRegularizer: Regularizer | null;
  private readonly biasRegularizer: Regularizer | null;
  private readonly kernelConstraint: Constraint | null;
  private readonly biasConstraint: Constraint | null;
  private kernel: tf.LayerVariable | null = null;
  private bias: tf.LayerVariable | null = null;

  constructor(args: DropConnectDenseArgs) {
    const base = { ...args } as DropConnectDenseArgs & { batchInputShape?: tf.Shape };
    // tf.layers.dense's `inputDim` shorthand for inputShape [inputDim].
    if (args.batchInputShape == null && args.inputShape == null && args.inputDim != null) {
      base.batchInputShape = [args.batchSize ?? null, args.inputDim];
    }
    super(base);
    const owner = this.describe();
    this.units = args.units;
    if (!(Number.isInteger(this.units) && this.units >= 1)) {
      throw invalidArgument(owner, 'units', args.units, 'to be a positive integer');
    }
    this.activation = getActivation(owner, args.activation);
    this.useBias = args.useBias ?? true;
    this.dropBias = args.dropBias ?? false;
    const where = (argument: string) => ({ owner, argument });
    this.kernelInitializer = getInitializer(
      args.kernelInitializer,
      'glorotNormal',
      where('kernelInitializer'),
    );
    this.biasInitializer = getInitializer(args.biasInitializer, 'zeros', where('biasInitializer'));
    this.kernelRegularizer = getRegularizer(args.kernelRegularizer, where('kernelRegularizer'));
    this.biasRegularizer = getRegularizer(args.biasRegularizer, where('biasRegularizer'));
    this.kernelConstraint = getConstraint(args.kernelConstraint, where('kernelConstraint'));
    this.biasConstraint = getConstraint(args.biasConstraint, where('biasConstraint'));
    const activityRegularizer = getRegularizer(
      args.activityRegularizer,
      where('activityRegularizer'),
    );
    if (activityRegularizer) this.activityRegularizer = activityRegularizer;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape, this.describe());
    const inputDim = shape[shape.length - 1];
    if (shape.length < 2 || inputDim == null) {
      throw invalidArgument(
        this.describe(),
        'input shape',
        shape,
        'to have rank ≥ 2 and a defined last dimension ([batch, …, features])',
      );
    }
    if (this.kernel == null) {
      this.kernel = this.addWeight(
        'kernel',
        [inputDim, this.units],
        'float32',
        this.kernelInitializer,
        this.kernelRegularizer ?? undefined,
        true,
        this.kernelConstraint ?? undefined,
      );
      if (this.useBias) {
        this.bias = this.addWeight(
          'bias',
          [this.units],
          'float32',
          this.biasInitializer,
          this.biasRegularizer ?? undefined,
          true,
          this.biasConstraint ?? undefined,
        );
      }
    }
    this.inputSpec = [new tf.InputSpec({ minNDim: 2, axes: { [-1]: inputDim } })];
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = singleShape(inputShape, this.describe()).slice();
    shape[shape.length - 1] = this.units;
    return shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleTensor(inputs, this.describe());
      let kernel = (this.kernel as tf.LayerVariable).read();
      let bias = this.bias?.read() ?? null;
      if (this.noiseActive(kwargs)) {
        const seed = this.nextSeed();
        if (this.rate > 0) {
          kernel = dropConnect(kernel, this.rate, seed);
          // A tag distinct from call indices, so the bias mask is not the next call's kernel mask.
          if (bias && this.dropBias) {
            bias = dropConnect(
              bias,
              this.rate,
              seed === undefined ? undefined : mixSeed(seed, 0xb1a5),
            );
          }
        }
      }
      const flat = x.rank === 2 ? x : tf.reshape(x, [-1, x.shape[x.rank - 1]]);
      let y: tf.Tensor = tf.matMul(flat, kernel);
      if (bias) y = tf.add(y, bias);
      if (x.rank !== 2) y = tf.reshape(y, [...x.shape.slice(0, -1), this.units]);
      return this.activation.apply(y);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      units: this.units,
      activation: this.activation.getClassName(),
      useBias: this.useBias,
      dropBias: this.dropBias,
      kernelInitializer: serializeKerasObject(this.kernelInitializer),
      biasInitializer: serializeKerasObject(this.biasInitializer),
      kernelRegularizer: serializeKerasObject(this.kernelRegularizer),
      biasRegularizer: serializeKerasObject(this.biasRegularizer),
      activityRegularizer: serializeKerasObject(this.activityRegularizer ?? null),
      kernelConstraint: serializeKerasObject(this.kernelConstraint),
      biasConstraint: serializeKerasObject(this.biasConstraint),
    };
    return { ...super.getConfig(), ...config };
  }
}
