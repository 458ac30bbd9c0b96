/**
 * The base of the pack's dropout layers: a seed stream, the training switch, and the Monte-Carlo
 * switch `mcPredict` uses. Not registered itself (it is abstract); subclasses are.
 */
import * as tf from '@tensorflow/tfjs';
import { BASE_LAYER_ARGS, describeLayer, invalidArgument, optionKeys } from '../errors';
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
}

/**
 * A layer that injects noise in training (`training: true`, e.g. in `model.fit`) and is a fixed
 * function at inference; `mcActive` keeps the noise on at inference (Monte-Carlo dropout).
 *
 * Unknown constructor arguments are errors (as in Keras): the constructor accepts exactly the keys
 * of the class's static {@link StochasticLayer.acceptedArgs}. A subclass with arguments of its
 * own extends its base's list: `static override readonly acceptedArgs = [...Base.acceptedArgs, 'k']`.
 */
export abstract class StochasticLayer extends tf.layers.Layer {
  /**
   * The constructor arguments (and config keys) this class accepts: the base `tf.layers.Layer`
   * arguments, plus `rate` and `seed`; each subclass adds its own to its base's list.
   */
  static readonly acceptedArgs: readonly string[] = [
    ...BASE_LAYER_ARGS,
    ...optionKeys<Omit<StochasticLayerArgs, keyof LayerArgs>>({ rate: true, seed: true }),
  ];

  readonly rate: number;
  readonly seed: number | undefined;
  /**
   * When true, `call` applies training-time noise even with `training` false or absent; set by
   * `mcPredict` for the duration of a prediction (every other layer stays in inference mode).
   */
  mcActive = false;
  private seeds: SeedStream;

  constructor(args: StochasticLayerArgs) {
    super(args);
    checkLayerArgs(this, args);
    const owner = this.describe();
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
    this.seed = args.seed ?? undefined;
    this.seeds = new SeedStream(this.seed);
    this.supportsMasking = true;
  }

  /** `<public class> '<layer name>'` (e.g. `Dropout 'drop_a'`), the owner named in error messages. */
  protected describe(): string {
    return describeLayer(this);
  }

  /** Whether this call draws noise: training, or a Monte-Carlo prediction. */
  protected noiseActive(kwargs: Kwargs | undefined): boolean {
    return kwargs?.['training'] === true || this.mcActive;
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
    return { ...super.getConfig(), rate: this.rate, seed: this.seed ?? null };
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
