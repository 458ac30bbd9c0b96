import * as tf from '@tensorflow/tfjs';
import {
  Constraint,
  Initializer,
  Regularizer,
  getConstraint,
  getInitializer,
  getRegularizer,
  serializeKerasObject,
} from './keras_objects';

type BuiltinBatchNormArgs = NonNullable<Parameters<typeof tf.layers.batchNormalization>[0]>;

/**
 * The Keras arguments of a normalization layer's learned scale γ and offset β: their initializers,
 * regularizers and constraints (tf.layers.batchNormalization's names and types).
 */
export type AffineArgs = Pick<
  BuiltinBatchNormArgs,
  | 'betaInitializer'
  | 'gammaInitializer'
  | 'betaRegularizer'
  | 'gammaRegularizer'
  | 'betaConstraint'
  | 'gammaConstraint'
>;

/** `addWeight`'s arguments after the name and the shape. */
type WeightTail = [
  dtype: 'float32',
  initializer: Initializer,
  regularizer: Regularizer | undefined,
  trainable: boolean,
  constraint: Constraint | undefined,
];

/**
 * The affine part y = γ·x̂ + β of a normalization layer (Ioffe & Szegedy 2015, arXiv:1502.03167,
 * Algorithm 1's "scale and shift"; Wu & He 2018, arXiv:1803.08494, Eq. 2 for GroupNorm): the
 * `gamma*` / `beta*` constructor arguments resolved once (Keras's defaults: γ ones, β zeros, no
 * regularizer or constraint), the weights' `addWeight` arguments, and their config entries.
 */
export class AffineParams {
  readonly betaInitializer: Initializer;
  readonly gammaInitializer: Initializer;
  readonly betaRegularizer: Regularizer | null;
  readonly gammaRegularizer: Regularizer | null;
  readonly betaConstraint: Constraint | null;
  readonly gammaConstraint: Constraint | null;

  /**
   * Resolves the six arguments in Keras's config order (β's initializer first).
   * @param owner the layer as `describeLayer` names it, for the error of an unknown identifier.
   * @throws DropnormValueError naming the layer, the argument and the value, with the nearest name.
   */
  constructor(owner: string, args: AffineArgs) {
    const where = (argument: string) => ({ owner, argument });
    this.betaInitializer = getInitializer(args.betaInitializer, 'zeros', where('betaInitializer'));
    this.gammaInitializer = getInitializer(
      args.gammaInitializer,
      'ones',
      where('gammaInitializer'),
    );
    this.betaRegularizer = getRegularizer(args.betaRegularizer, where('betaRegularizer'));
    this.gammaRegularizer = getRegularizer(args.gammaRegularizer, where('gammaRegularizer'));
    this.betaConstraint = getConstraint(args.betaConstraint, where('betaConstraint'));
    this.gammaConstraint = getConstraint(args.gammaConstraint, where('gammaConstraint'));
  }

  /**
   * `addWeight`'s arguments after the name and shape for the trainable float32 weight `gamma` or
   * `beta`: `this.addWeight('gamma', [c], ...affine.weight('gamma'))`.
   */
  weight(which: 'gamma' | 'beta'): WeightTail {
    return which === 'gamma'
      ? [
          'float32',
          this.gammaInitializer,
          this.gammaRegularizer ?? undefined,
          true,
          this.gammaConstraint ?? undefined,
        ]
      : [
          'float32',
          this.betaInitializer,
          this.betaRegularizer ?? undefined,
          true,
          this.betaConstraint ?? undefined,
        ];
  }

  /** The initializers' config entries (`{className, config}` each), Keras's keys and order. */
  initializerConfig(): tf.serialization.ConfigDict {
    return {
      betaInitializer: serializeKerasObject(this.betaInitializer),
      gammaInitializer: serializeKerasObject(this.gammaInitializer),
    };
  }

  /** The regularizers' and constraints' config entries (null when none), Keras's keys and order. */
  penaltyConfig(): tf.serialization.ConfigDict {
    return {
      betaRegularizer: serializeKerasObject(this.betaRegularizer),
      gammaRegularizer: serializeKerasObject(this.gammaRegularizer),
      betaConstraint: serializeKerasObject(this.betaConstraint),
      gammaConstraint: serializeKerasObject(this.gammaConstraint),
    };
  }
}
