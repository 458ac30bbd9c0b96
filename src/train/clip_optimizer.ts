/**
 * Gradient clipping for any tf.Optimizer, with the semantics of Keras's optimizer arguments
 * `clipnorm`, `clipvalue` and `global_clipnorm` (Keras 3, `keras/src/optimizers/base_optimizer.py`).
 * Clipping by norm against exploding gradients: Pascanu, Mikolov & Bengio (2013), "On the
 * difficulty of training recurrent neural networks", arXiv:1211.5063, Alg. 1.
 */
import * as tf from '@tensorflow/tfjs';
import { DropnormValueError, checkOptionKeys, invalidArgument, optionSpec } from '../errors';
import { globalNorm, l2Norm } from './norms';

/** What to do when a gradient holds NaN or ±Infinity. */
export type NonFiniteAction = 'throw' | 'skip';

/** Options of {@link clipOptimizer}. At most one of clipNorm, clipValue, globalClipNorm. */
/**
 * The clipping mode of {@link ClipOptions}: at most one of `clipNorm`, `clipValue`,
 * `globalClipNorm` (as in Keras 3, which applies only one), so a second one does not type-check
 * (the runtime rejects it too).
 */
export type ClipMode =
  | {
      /** Per variable: g ← g·c / max(‖g‖₂, c) (Keras `clipnorm`). */
      clipNorm: number;
      clipValue?: undefined;
      globalClipNorm?: undefined;
    }
  | {
      /** Elementwise: g ← clip(g, −c, c) (Keras `clipvalue`). */
      clipValue: number;
      clipNorm?: undefined;
      globalClipNorm?: undefined;
    }
  | {
      /** All variables together: gᵢ ← gᵢ·c / max(‖g‖_global, c), ‖g‖_global = √Σᵢ‖gᵢ‖² (Keras `global_clipnorm`). */
      globalClipNorm: number;
      clipNorm?: undefined;
      clipValue?: undefined;
    }
  | { clipNorm?: undefined; clipValue?: undefined; globalClipNorm?: undefined };

/** Options of {@link clipOptimizer}: one {@link ClipMode} (or none) and the non-finite policy. */
export type ClipOptions = ClipMode & {
  /**
   * A NaN/±Infinity gradient element: `'throw'` (default) raises a DropnormValueError naming the
   * variables, before anything is applied; `'skip'` leaves weights and optimizer state unchanged
   * for that step and counts it in {@link ClipOptimizer.skippedSteps}.
   */
  nonFinite?: NonFiniteAction;
};

const MODES = ['clipNorm', 'clipValue', 'globalClipNorm'] as const;
// The options of ClipOptions and their types: add a new option here too (tsc checks the two agree).
const CLIP_OPTIONS = optionSpec<ClipOptions>({
  clipNorm: 'number',
  clipValue: 'number',
  globalClipNorm: 'number',
  nonFinite: ['throw', 'skip'],
});

/** tfjs-core's NamedTensor (not re-exported by @tensorflow/tfjs). */
interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

type Gradients = tf.NamedTensorMap | NamedTensor[];

/**
 * A tf.Optimizer that clips gradients, checks them for NaN/Infinity, then hands them to the wrapped
 * optimizer. Build it with {@link clipOptimizer}.
 *
 * Clipping happens in `applyGradients`, which `minimize` (what `model.fit` calls) goes through,
 * so custom training loops that call `applyGradients` directly are clipped too. At most one mode,
 * as in Keras 3, which applies only one of them (clipnorm, else global_clipnorm, else clipvalue).
 *
 * Serialization: `getConfig()` holds the wrapped optimizer's className and config plus the clip
 * options, the class is registered as 'DropnormClipOptimizer', and `getWeights`/`setWeights` are
 * the wrapped optimizer's, so `model.save(url, {includeOptimizer: true})` and `loadLayersModel`
 * restore a ClipOptimizer around the same optimizer with the same state. A model saved this way
 * loads only where tfjs-dropnorm is imported (the class must be registered).
 */
export class ClipOptimizer extends tf.Optimizer {
  static className = 'DropnormClipOptimizer';

  /** Steps skipped because of non-finite gradients (only with `nonFinite: 'skip'`). */
  skippedSteps = 0;

  constructor(
    readonly optimizer: tf.Optimizer,
    readonly options: Readonly<ClipOptions> = {},
  ) {
    super();
    validate(optimizer, options);
  }

  override get iterations(): number {
    return this.optimizer.iterations;
  }

  override applyGradients(variableGradients: Gradients): void {
    const named: NamedTensor[] = Array.isArray(variableGradients)
      ? variableGradients
      : Object.keys(variableGradients).map((name) => ({
          name,
          tensor: variableGradients[name],
        }));
    const present = named.filter((g) => g.tensor != null);
    if (!this.checkFinite(present)) return;
    const clipped = tf.tidy(() => this.clip(present.map((g) => g.tensor)));
    const inputs = new Set(present.map((g) => g.tensor));
    try {
      const out = present.map((g, i) => ({ name: g.name, tensor: clipped[i] }));
      if (Array.isArray(variableGradients)) {
        this.optimizer.applyGradients(out);
      } else {
        const map: tf.NamedTensorMap = {};
        for (const g of out) map[g.name] = g.tensor;
        this.optimizer.applyGradients(map);
      }
    } finally {
      tf.dispose(clipped.filter((t) => !inputs.has(t)));
    }
  }

  /** The clipped gradients (new tensors, or the inputs when there is nothing to clip). */
  private clip(grads: tf.Tensor[]): tf.Tensor[] {
    const { clipNorm, clipValue, globalClipNorm } = this.options;
    if (clipNorm !== undefined) {
      return grads.map((g) => tf.div(tf.mul(g, clipNorm), tf.maximum(l2Norm(g), clipNorm)));
    }
    if (globalClipNorm !== undefined) {
      const scale = tf.div(globalClipNorm, tf.maximum(globalNorm(grads), globalClipNorm));
      return grads.map((g) => tf.mul(g, scale));
    }
    if (clipValue !== undefined) {
      return grads.map((g) => tf.clipByValue(g, -clipValue, clipValue));
    }
    return grads;
  }

  /** True when every element is finite; otherwise throws or (skip) returns false. */
  private checkFinite(grads: NamedTensor[]): boolean {
    if (grads.length === 0) return true;
    const counts = tf.tidy(() =>
      tf.stack(grads.map((g) => tf.sum(tf.cast(tf.logicalNot(tf.isFinite(g.tensor)), 'int32')))),
    );
    const bad = counts.dataSync();
    counts.dispose();
    const offenders = grads.filter((_, i) => bad[i] > 0);
    if (offenders.length === 0) return true;
    if ((this.options.nonFinite ?? 'throw') === 'skip') {
      this.skippedSteps++;
      return false;
    }
    const list = grads
      .map((g, i) => (bad[i] > 0 ? `${g.name} (${bad[i]} of ${g.tensor.size})` : null))
      .filter((s) => s !== null)
      .join(', ');
    throw new DropnormValueError(
      `ClipOptimizer: non-finite gradient (NaN or Infinity) at step ${this.iterations} in ${list}; ` +
        'no weight was changed. The loss has likely diverged: lower the learning rate, check the ' +
        "inputs for NaN, or pass {nonFinite: 'skip'} to skip such steps.",
    );
  }

  override dispose(): void {
    this.optimizer.dispose();
  }

  /** The wrapped optimizer's weights (iterations and slots), as it would save them. */
  override async getWeights(): Promise<NamedTensor[]> {
    return this.optimizer.getWeights();
  }

  /** Restores the wrapped optimizer's weights. */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    await this.optimizer.setWeights(weightValues);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      optimizer: {
        className: this.optimizer.getClassName(),
        config: this.optimizer.getConfig(),
      },
    };
    for (const mode of MODES) {
      if (this.options[mode] !== undefined) config[mode] = this.options[mode] as number;
    }
    if (this.options.nonFinite !== undefined) config.nonFinite = this.options.nonFinite;
    return config;
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const inner = config.optimizer as { className?: string; config?: tf.serialization.ConfigDict };
    const className = inner?.className;
    const entry =
      className != null
        ? tf.serialization.SerializationMap.getMap().classNameMap[className]
        : undefined;
    if (!entry) {
      throw invalidArgument(
        'ClipOptimizer.fromConfig',
        'optimizer.className',
        className,
        'to name a registered tf.Optimizer class',
      );
    }
    const [innerCls, innerFromConfig] = entry;
    const optimizer = innerFromConfig(innerCls, inner.config ?? {}) as unknown as tf.Optimizer;
    // Built key by key from the config; the constructor checks it like a user's options.
    const options: Record<string, unknown> = {};
    for (const mode of MODES) {
      if (typeof config[mode] === 'number') options[mode] = config[mode];
    }
    if (config.nonFinite === 'throw' || config.nonFinite === 'skip') {
      options.nonFinite = config.nonFinite;
    }
    return new (cls as unknown as typeof ClipOptimizer)(
      optimizer,
      options as ClipOptions,
    ) as unknown as T;
  }
}

function validate(optimizer: tf.Optimizer, options: ClipOptions): void {
  const owner = 'clipOptimizer';
  if (!(optimizer instanceof tf.Optimizer)) {
    throw invalidArgument(
      owner,
      'optimizer',
      typeof optimizer,
      'to be a tf.Optimizer instance',
      'Pass e.g. tf.train.adam(1e-3); a string name is not accepted here.',
    );
  }
  checkOptionKeys(owner, options, CLIP_OPTIONS);
  const set = MODES.filter((m) => options[m] !== undefined);
  for (const mode of set) {
    const value = options[mode] as number;
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw invalidArgument(owner, mode, value, 'to be a finite number > 0');
    }
  }
  if (set.length > 1) {
    throw invalidArgument(
      owner,
      'options',
      Object.fromEntries(set.map((m) => [m, options[m]])),
      'to set at most one of clipNorm, clipValue, globalClipNorm',
      'Keras 3 applies only one of them; choose one.',
    );
  }
  const action = options.nonFinite;
  if (action !== undefined && action !== 'throw' && action !== 'skip') {
    throw invalidArgument(owner, 'nonFinite', action, "to be 'throw' or 'skip'");
  }
}

/**
 * Wraps `optimizer` so that every update first clips the gradients (Keras semantics):
 * - `clipNorm: c` — per variable, g·c / max(‖g‖₂, c);
 * - `globalClipNorm: c` — all variables, gᵢ·c / max(√Σⱼ‖gⱼ‖², c) (Pascanu et al. 2013);
 * - `clipValue: c` — elementwise clip to [−c, c];
 *
 * and refuses non-finite gradients (`nonFinite: 'throw'`, the default) or skips that step
 * (`'skip'`). With no clip option it only guards against non-finite gradients.
 *
 * ```ts
 * model.compile({ optimizer: clipOptimizer(tf.train.adam(1e-3), { globalClipNorm: 1 }), loss });
 * ```
 * See {@link ClipOptimizer} for serialization.
 */
export function clipOptimizer(optimizer: tf.Optimizer, options: ClipOptions = {}): ClipOptimizer {
  return new ClipOptimizer(optimizer, options);
}
