/**
 * The base of the pack's dropout layers: a seed stream, the training switch, the Monte-Carlo
 * switches (`mcDropout`, saved with the layer; `mcActive`, set by `mcPredict`) and the rate, which
 * schedules may change between steps. Not registered itself (it is abstract); subclasses are.
 */
import * as tf from '@tensorflow/tfjs';
import {
  BASE_LAYER_ARG_TYPES,
  OptionSpec,
  describeLayer,
  invalidArgument,
  optionSpec,
} from '../errors';
import { checkRate } from '../ops/dropout';
import { SeedStream } from '../random';
import { Kwargs, checkLayerArgs, singleTensor } from './util';

/** Arguments every `tf.layers.Layer` takes (name, inputShape, trainable, dtype, …). */
export type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/** Arguments shared by the pack's dropout layers. */
export interface StochasticLayerArgs extends LayerArgs {
  /** Drop probability p, in [0, 1). */
  rate: number;
  /**
   * Seed of the layer's mask sequence: call k of a layer with seed s uses the k-th seed of
   * `new SeedStream(s)`, so masks differ from call to call and repeat from run to run. The first
   * call uses s itself, as `tf.layers.dropout({seed: s})` does at every call. Omitted: fresh
   * randomness at every call.
   */
  seed?: number | null;
  /**
   * Keep the layer stochastic at inference too (default false): `model.predict` and
   * `model.evaluate` then draw noise in this layer, so repeated predictions are Monte-Carlo samples
   * (Gal & Ghahramani 2016), while every other layer stays in inference mode. The Keras idiom
   * `Dropout(0.5)(x, training=True)` (keras-contrib's `mc_dropout`), which tfjs ignores in a
   * symbolic call. Saved with the model.
   */
  mcDropout?: boolean;
}

/**
 * A layer that injects noise in training (`training: true`, e.g. in `model.fit`) and is a fixed
 * function at inference; `mcDropout` (saved) and `mcActive` (set by `mcPredict`) keep the noise on
 * at inference (Monte-Carlo dropout). `rate` may be changed between steps (a schedule): it is read
 * at every call, so the change takes effect at the next call, with no rebuild.
 *
 * Unknown constructor arguments are errors (as in Keras): the constructor accepts exactly the keys
 * of the class's static {@link StochasticLayer.acceptedArgs}. A subclass with arguments of its
 * own extends its base's list: `static override readonly acceptedArgs = [...Base.acceptedArgs, 'k']`.
 */
export abstract class StochasticLayer extends tf.layers.Layer {
  /**
   * The types of the constructor arguments (and config keys) this class accepts: the base
   * `tf.layers.Layer` arguments, plus `rate`, `seed` and `mcDropout`; each subclass adds its own
   * to its base's spec (`{ ...Base.argTypes, ...optionSpec<OwnArgs>({ … }) }`). A value of another
   * type is an error (nothing is read by truthiness), from JavaScript and from JSON configs alike.
   */
  static readonly argTypes: OptionSpec = {
    ...BASE_LAYER_ARG_TYPES,
    ...optionSpec<Omit<StochasticLayerArgs, keyof LayerArgs>>({
      rate: 'number',
      seed: 'number|null',
      mcDropout: 'boolean',
    }),
  };
  /** The names of {@link StochasticLayer.argTypes}: anything else is an error. */
  static readonly acceptedArgs: readonly string[] = Object.keys(StochasticLayer.argTypes);

  readonly seed: number | undefined;
  /**
   * When true, `call` applies training-time noise even with `training` false or absent; set by
   * `mcPredict` for the duration of a prediction (every other layer stays in inference mode).
   */
  mcActive = false;
  private seeds: SeedStream;
  private currentRate = 0;
  private alwaysStochastic = false;

  constructor(args: StochasticLayerArgs) {
    super(args);
    const owner = this.describe();
    if (args == null) {
      // `dn.layers.dropout()`: tfjs would default the rate; the pack asks for it (Keras requires it).
      throw invalidArgument(
        owner,
        'arguments',
        args,
        'to be an object with at least rate',
        `Pass the drop probability by name, e.g. {rate: 0.5}.`,
      );
    }
    checkLayerArgs(this, args);
    checkRate(owner, args.rate);
    if (args.seed != null && (typeof args.seed !== 'number' || !Number.isFinite(args.seed))) {
      throw invalidArgument(
        owner,
        'seed',
        args.seed,
        'to be a finite number or omitted',
        'Omit it for fresh randomness at every call.',
      );
    }
    this.rate = args.rate;
    this.mcDropout = args.mcDropout ?? false;
    this.seed = args.seed ?? undefined;
    this.seeds = new SeedStream(this.seed);
    this.supportsMasking = true;
  }

  /**
   * Drop probability p in [0, 1). Settable between steps (e.g. by {@link DropRateScheduler}),
   * validated like the constructor argument; `getConfig` saves the current value.
   */
  get rate(): number {
    return this.currentRate;
  }

  set rate(value: number) {
    checkRate(describeLayer(this), value);
    this.currentRate = value;
  }

  /**
   * Whether the layer draws noise at inference too (see {@link StochasticLayerArgs.mcDropout});
   * settable, e.g. on a loaded model, and saved by `getConfig`.
   */
  get mcDropout(): boolean {
    return this.alwaysStochastic;
  }

  set mcDropout(value: boolean) {
    if (typeof value !== 'boolean') {
      throw invalidArgument(
        describeLayer(this),
        'mcDropout',
        value,
        'to be true or false',
        'true keeps the layer stochastic at inference (Monte-Carlo dropout).',
      );
    }
    this.alwaysStochastic = value;
  }

  /** `<public class> '<layer name>'` (e.g. `Dropout 'drop_a'`), the owner named in error messages. */
  protected describe(): string {
    return describeLayer(this);
  }

  /** Whether this call draws noise: training, an always-stochastic layer, or `mcPredict`. */
  protected noiseActive(kwargs: Kwargs | undefined): boolean {
    return kwargs?.['training'] === true || this.mcDropout || this.mcActive;
  }

  /** The seed of this call (undefined when unseeded); advances the stream. */
  protected nextSeed(): number | undefined {
    return this.seeds.next();
  }

  /** Restarts the mask sequence at its first call (what a freshly built layer would draw). */
  resetSeedStream(): void {
    this.seeds.reset();
  }

  /**
   * Replaces the seed stream and returns the old one (`mcPredict` uses it to make a seeded
   * prediction reproducible and then restore the layer's own sequence).
   * @internal
   */
  swapSeedStream(stream: SeedStream): SeedStream {
    const old = this.seeds;
    this.seeds = stream;
    return old;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      rate: this.rate,
      seed: this.seed ?? null,
      mcDropout: this.mcDropout,
    };
  }
}

/**
 * A {@link StochasticLayer} that perturbs its activations: at inference {@link inference} (the
 * identity unless overridden), in training (or a Monte-Carlo prediction) {@link noise} with this
 * call's seed, and the identity at rate 0. Every call in training advances the seed stream, rate 0
 * included, so a layer's mask sequence does not depend on its rate.
 */
export abstract class ActivationNoiseLayer extends StochasticLayer {
  /** The training-time transform of `x` with this call's seed (rate > 0). */
  protected abstract noise(x: tf.Tensor, seed: number | undefined): tf.Tensor;

  /** The inference-time transform of `x`: the identity, unless a subclass scales (classic dropout). */
  protected inference(x: tf.Tensor): tf.Tensor {
    return x;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleTensor(inputs, this.describe());
      if (!this.noiseActive(kwargs)) return this.inference(x);
      const seed = this.nextSeed();
      if (this.rate === 0) return x;
      return this.noise(x, seed);
    });
  }
}
