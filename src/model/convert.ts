/**
 * Conversion between tfjs's built-in layers and the pack's, so existing models can use the pack
 * (and models trained with the pack can be shipped with built-ins only). Built on
 * {@link rewriteModel}: a new model, the input untouched; nested models are converted on their own
 * and swapped in, as {@link foldBatchNorm} folds them.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, invalidArgument, optionKeys } from '../errors';
import { AlphaDropout } from '../layers/alpha_dropout';
import { BatchNorm } from '../layers/batch_norm';
import { DropBlock2D } from '../layers/drop_block';
import { DropConnectDense } from '../layers/drop_connect_dense';
import { DropPath } from '../layers/drop_path';
import { Dropout } from '../layers/dropout';
import { GaussianDropout } from '../layers/gaussian_dropout';
import { SpatialDropout1D, SpatialDropout2D, SpatialDropout3D } from '../layers/spatial_dropout';
import { StochasticLayer } from '../layers/stochastic';
import { VarianceCorrection } from '../ops/batch_norm';
import { wrappedLayers } from '../layers/util';
import { NO_BUILTIN_EQUIVALENT } from './no_builtin';
import {
  BUILTIN_BATCH_NORM,
  MAX_BUILTIN_BATCH_NORM_RANK,
  batchNormAxis,
  builtinBatchNormConfig,
  builtinBatchNormWeights,
} from './batch_norm_layers';
import {
  GraphNode,
  LayerSpec,
  Substitution,
  assertLayersModel,
  baseLayerConfig,
  firstCalls,
  modelGraph,
  nestedModelSpec,
  rewriteModel,
} from './rewrite';

type Layer = tf.layers.Layer;
type ConfigDict = tf.serialization.ConfigDict;

/** Options of {@link convertToDropnorm}. */
export interface ConvertToDropnormOptions {
  /**
   * varianceCorrection of the new BatchNorms (default 'unbiased', the pack's default). Inference is
   * the same either way; it decides what later training writes into moving_variance.
   */
  varianceCorrection?: VarianceCorrection;
  /**
   * `mcDropout` of the new dropout layers (default false): true keeps them stochastic at inference,
   * so `model.predict` of the converted model gives Monte-Carlo samples while BatchNorm stays in
   * inference mode.
   */
  mcDropout?: boolean;
}

/** A layer that was replaced by its counterpart. */
export interface ConvertedLayer {
  /** The layer's name; inside a nested model, its path (`'encoder/dropout_1'`). */
  layer: string;
  /** Serialization class name before (`'Dropout'`) … */
  from: string;
  /** … and after (`'DropnormDropout'`). */
  to: string;
  /** What behaves differently after the conversion, when something does. */
  note?: string;
}

/** A layer of a convertible kind that was left as it was, and why. */
export interface SkippedLayer {
  /** The layer's name; inside a nested model, its path. */
  layer: string;
  /** Its serialization class name. */
  className: string;
  reason: string;
}

/** Result of {@link convertToDropnorm} and {@link convertToBuiltins}. */
export interface ConversionResult {
  /** The new, uncompiled functional model; the input model is untouched. */
  model: tf.LayersModel;
  converted: ConvertedLayer[];
  skipped: SkippedLayer[];
}

/** Momentum given to a built-in BN converted from a cumulative (`momentum: null`) BatchNorm. */
export const CUMULATIVE_FALLBACK_MOMENTUM = 0.99;

/** Which layer kinds a conversion touches (mcPredict converts only the dropout layers). */
type Kinds = 'all' | 'dropout';

interface Converter {
  /** The replacement, or a string: why the layer is kept. */
  (node: GraphNode): { spec: LayerSpec; note?: string } | string;
}

const SEEDED_BUILTIN_NOTE =
  'training: the built-in repeats its seeded mask at every call; the pack draws a new mask per call from the same seed';

/** Built-in → pack, by the built-in's class name. */
function toDropnormConverters(
  varianceCorrection: VarianceCorrection,
  mcDropout: boolean,
): Record<string, { kind: Kinds; convert: Converter }> {
  const seededNote = (config: ConfigDict) =>
    config.seed != null ? SEEDED_BUILTIN_NOTE : undefined;
  /** The pack's `className` with the built-in's base keys and rate, then `extra` and mcDropout. */
  const packDropout = (
    className: string,
    config: ConfigDict,
    extra: ConfigDict,
    note?: string,
  ) => ({
    spec: {
      className,
      config: { ...baseLayerConfig(config), rate: config.rate, ...extra, mcDropout },
    },
    note,
  });
  return {
    [BUILTIN_BATCH_NORM]: {
      kind: 'all',
      convert: (node) => {
        const config = node.layer.getConfig();
        const rank = node.inputs[0].shape.length;
        const channelsFirst = rank >= 3 && batchNormAxis(node.layer, rank) !== rank - 1;
        return {
          spec: { className: BatchNorm.className, config: { ...config, varianceCorrection } },
          note: channelsFirst
            ? 'inference outputs change: the built-in normalizes a channels-first input along the last axis (tfjs#1106); the pack along its axis'
            : undefined,
        };
      },
    },
    Dropout: {
      kind: 'dropout',
      convert: (node) => {
        const config = node.layer.getConfig();
        const extra = { seed: config.seed ?? null, noiseShape: config.noiseShape ?? null };
        return packDropout(
          Dropout.className,
          config,
          { ...extra, mode: 'inverted' },
          seededNote(config),
        );
      },
    },
    SpatialDropout1D: {
      kind: 'dropout',
      convert: (node) => {
        const config = node.layer.getConfig();
        const extra = { seed: config.seed ?? null, dataFormat: 'channelsLast' };
        return packDropout(SpatialDropout1D.className, config, extra, seededNote(config));
      },
    },
    GaussianDropout: {
      kind: 'dropout',
      convert: (node) => packDropout(GaussianDropout.className, node.layer.getConfig(), {}),
    },
    AlphaDropout: {
      kind: 'dropout',
      convert: (node) => {
        const config = node.layer.getConfig();
        // The built-in keeps noiseShape on the object but does not serialize it.
        const noiseShape = (node.layer as unknown as { noiseShape?: number[] }).noiseShape ?? null;
        return packDropout(
          AlphaDropout.className,
          config,
          { noiseShape },
          'training behaviour changes: the built-in sets dropped units to +λα and shifts the mean (+0.32 at rate 0.1 on standard-normal input); the pack sets them to −λα and keeps mean 0 and variance 1 (Klambauer et al. 2017)',
        );
      },
    },
  };
}

const NO_BUILTIN = new Map<string, string>([
  [SpatialDropout2D.className, 'tf.layers has no SpatialDropout2D'],
  [SpatialDropout3D.className, 'tf.layers has no SpatialDropout3D'],
  [DropConnectDense.className, 'tf.layers has no DropConnect layer'],
  [DropBlock2D.className, 'tf.layers has no DropBlock layer'],
  [DropPath.className, 'tf.layers has no DropPath (stochastic depth) layer'],
]);

const MC_DROPOUT_REASON =
  'mcDropout is true (stochastic at inference): a built-in dropout layer is the identity in predict';

/** Pack → built-in, by the pack's class name. */
function toBuiltinConverters(): Record<string, Converter> {
  const dropoutBase = (layer: StochasticLayer): ConfigDict => ({
    ...baseLayerConfig(layer.getConfig()),
    rate: layer.rate,
  });
  /**
   * The built-in `className` for a layer whose built-in takes its seed (Dropout,
   * SpatialDropout1D), with `extra` keys; seeded, that built-in repeats its mask.
   */
  const seededBuiltin = (className: string, layer: StochasticLayer, extra: ConfigDict = {}) => {
    const config: ConfigDict = dropoutBase(layer);
    if (layer.seed != null) config.seed = layer.seed;
    return {
      spec: { className, config: { ...config, ...extra } },
      note:
        layer.seed != null
          ? 'training: a seeded built-in draws the same mask at every call'
          : undefined,
    };
  };
  return {
    [BatchNorm.className]: (node) => {
      const layer = node.layer as BatchNorm;
      if (layer.renorm) {
        return 'renorm is true (Batch Renormalization): tf.layers.batchNormalization has no r, d correction, so it would train differently (inference is the same: exportForInference exports it)';
      }
      if (layer.virtualBatchSize !== null) {
        return `virtualBatchSize is ${layer.virtualBatchSize} (Ghost BatchNorm): tf.layers.batchNormalization normalizes the whole batch, so it would train differently (inference is the same: exportForInference exports it)`;
      }
      const rank = node.inputs[0].shape.length;
      if (rank > MAX_BUILTIN_BATCH_NORM_RANK) {
        return `its input has rank ${rank}: tf.layers.batchNormalization cannot run it in tfjs 4.22 ("batchNormalization is not implemented for array of rank ${rank} yet"; exportForInference exports it as a Dense affine map, or folds it into a Conv3D)`;
      }
      if (batchNormAxis(layer, rank) !== rank - 1) {
        return `its channel axis ${String(layer.axis)} is not the last axis of its rank-${rank} input: tf.layers.batchNormalization applies its statistics along the last axis whatever its axis (tfjs#1106), so it would compute wrong outputs`;
      }
      const builtin = builtinBatchNormConfig(layer);
      const notes: string[] = [];
      if (builtin.momentum == null) {
        builtin.momentum = CUMULATIVE_FALLBACK_MOMENTUM;
        notes.push(
          `momentum null (cumulative average) became ${CUMULATIVE_FALLBACK_MOMENTUM} and num_batches_tracked was dropped`,
        );
      }
      if (layer.varianceCorrection === 'unbiased') {
        notes.push(
          "later training: the built-in's running variance is biased (the pack's was 'unbiased')",
        );
      }
      return {
        spec: {
          className: BUILTIN_BATCH_NORM,
          config: builtin,
          weights: builtinBatchNormWeights(layer),
        },
        note: notes.length > 0 ? notes.join('; ') : undefined,
      };
    },
    [Dropout.className]: (node) => {
      const layer = node.layer as Dropout;
      if (layer.mcDropout) return MC_DROPOUT_REASON;
      if (layer.mode !== 'inverted') {
        return "its mode is 'classic': tf.layers.dropout has no classic mode (it would drop the (1−rate) inference scaling)";
      }
      return seededBuiltin(
        'Dropout',
        layer,
        layer.noiseShape != null ? { noiseShape: layer.noiseShape } : {},
      );
    },
    [SpatialDropout1D.className]: (node) => {
      const layer = node.layer as SpatialDropout1D;
      if (layer.mcDropout) return MC_DROPOUT_REASON;
      if (layer.dataFormat !== 'channelsLast') {
        return "its dataFormat is 'channelsFirst': tf.layers.spatialDropout1d is channels-last only";
      }
      return seededBuiltin('SpatialDropout1D', layer);
    },
    [GaussianDropout.className]: (node) => {
      const layer = node.layer as GaussianDropout;
      if (layer.mcDropout) return MC_DROPOUT_REASON;
      return {
        spec: { className: 'GaussianDropout', config: dropoutBase(layer) },
        note:
          layer.seed != null
            ? 'the built-in takes no seed: its noise is not reproducible'
            : undefined,
      };
    },
    [AlphaDropout.className]: (node) => {
      const layer = node.layer as AlphaDropout;
      if (layer.mcDropout) return MC_DROPOUT_REASON;
      const dropped = [
        layer.seed != null ? 'seed' : null,
        layer.noiseShape != null ? 'noiseShape' : null,
      ].filter((k) => k);
      return {
        spec: { className: 'AlphaDropout', config: dropoutBase(layer) },
        note:
          'inference is the same; training is not: the built-in sets dropped units to +λα and shifts the mean (see docs/guide/dropout.md)' +
          (dropped.length > 0
            ? `; ${dropped.join(' and ')} not kept (the built-in does not save them)`
            : ''),
      };
    },
  };
}

/**
 * A wrapper layer's conversion: a `TimeDistributed` whose layer converts becomes a TimeDistributed
 * of the converted layer (its weights are its layer's); the decision sees the layer as it runs, on
 * one time step (the time axis, 1, left out of the shapes). The layers inside any other wrapper
 * (`Bidirectional` holds RNNs, which have no counterpart) are listed in `skipped` if they would
 * convert.
 */
function convertWrapped(
  node: GraphNode,
  decide: (node: GraphNode) => { spec: LayerSpec; note?: string } | string | null,
  path: string,
): { replace?: LayerSpec; converted: ConvertedLayer[]; skipped: SkippedLayer[] } {
  const wrapper = node.layer;
  const converted: ConvertedLayer[] = [];
  const skipped: SkippedLayer[] = [];
  const inners = wrappedLayers(wrapper);
  const timeDistributed = wrapper.getClassName() === 'TimeDistributed' && inners.length === 1;
  const step = (t: tf.SymbolicTensor) =>
    ({ shape: [t.shape[0], ...t.shape.slice(2)], dtype: t.dtype }) as tf.SymbolicTensor;
  let replace: LayerSpec | undefined;
  for (const inner of inners) {
    const innerPath = `${path}/${inner.name}`;
    const decision = decide({
      layer: inner,
      inputs: timeDistributed ? node.inputs.map(step) : node.inputs,
      outputs: timeDistributed ? node.outputs.map(step) : node.outputs,
      callArgs: node.callArgs,
    });
    if (decision == null) continue;
    if (typeof decision === 'string') {
      skipped.push({ layer: innerPath, className: inner.getClassName(), reason: decision });
    } else if (!timeDistributed) {
      skipped.push({
        layer: innerPath,
        className: inner.getClassName(),
        reason: `inside the wrapper '${wrapper.name}' (${wrapper.getClassName()}), which the conversion does not rebuild`,
      });
    } else {
      const config = {
        ...wrapper.getConfig(),
        layer: { className: decision.spec.className, config: decision.spec.config },
      };
      replace = { className: wrapper.getClassName(), config, weights: decision.spec.weights };
      converted.push(convertedEntry(innerPath, inner, decision));
    }
  }
  return { replace, converted, skipped };
}

/** The report entry of the layer `layer` at `path`, replaced as `decision` says. */
function convertedEntry(
  path: string,
  layer: Layer,
  decision: { spec: LayerSpec; note?: string },
): ConvertedLayer {
  const entry: ConvertedLayer = {
    layer: path,
    from: layer.getClassName(),
    to: decision.spec.className,
  };
  if (decision.note) entry.note = decision.note;
  return entry;
}

/**
 * The conversion engine: visits every layer call (nested models recursively), asks `decide` what
 * to do with each layer, and rewrites the model once.
 */
function convert(
  owner: string,
  model: tf.LayersModel,
  decide: (node: GraphNode) => { spec: LayerSpec; note?: string } | string | null,
  prefix = '',
): ConversionResult {
  const converted: ConvertedLayer[] = [];
  const skipped: SkippedLayer[] = [];
  const subs = new Map<Layer, Substitution>();
  const nested: tf.LayersModel[] = [];
  try {
    for (const node of firstCalls(modelGraph(model).nodes)) {
      const layer = node.layer;
      const path = prefix + layer.name;
      if (layer instanceof tf.LayersModel) {
        const inner = convert(owner, layer, decide, `${path}/`);
        nested.push(inner.model);
        converted.push(...inner.converted);
        skipped.push(...inner.skipped);
        if (inner.converted.length > 0) {
          subs.set(layer, { replace: nestedModelSpec(inner.model) });
        }
        continue;
      }
      if (wrappedLayers(layer).length > 0) {
        const inner = convertWrapped(node, decide, path);
        if (inner.replace) subs.set(layer, { replace: inner.replace });
        converted.push(...inner.converted);
        skipped.push(...inner.skipped);
        continue;
      }
      const decision = decide(node);
      if (decision == null) continue;
      if (typeof decision === 'string') {
        skipped.push({ layer: path, className: layer.getClassName(), reason: decision });
        continue;
      }
      subs.set(layer, { replace: decision.spec });
      converted.push(convertedEntry(path, layer, decision));
    }
    return { model: rewriteModel(model, subs, { owner }), converted, skipped };
  } finally {
    nested.forEach((m) => m.dispose());
  }
}

/** Keys {@link convertToDropnorm} accepts in its options. */
const CONVERT_TO_DROPNORM_OPTIONS = optionKeys<ConvertToDropnormOptions>({
  varianceCorrection: true,
  mcDropout: true,
});

/**
 * The converter behind {@link convertToDropnorm}; `kinds: 'dropout'` converts the dropout layers
 * only (what `mcPredict` needs to switch them on alone).
 * @internal
 */
export function convertBuiltinsToDropnorm(
  owner: string,
  model: tf.LayersModel,
  options: ConvertToDropnormOptions,
  kinds: Kinds,
): ConversionResult {
  const varianceCorrection = options.varianceCorrection ?? 'unbiased';
  const table = toDropnormConverters(varianceCorrection, options.mcDropout ?? false);
  return convert(owner, model, (node) => {
    const entry = table[node.layer.getClassName()];
    if (entry == null || (kinds === 'dropout' && entry.kind !== 'dropout')) return null;
    return entry.convert(node);
  });
}

/**
 * Replaces every built-in layer that has a counterpart in the pack, in nested models and inside
 * `tf.layers.timeDistributed` wrappers too (the wrapper is rebuilt around the converted layer; its
 * path is `'wrapper/layer'`):
 *
 * - `BatchNormalization` → {@link BatchNorm} (config and weights γ, β, moving mean and variance;
 *   `varianceCorrection` from the options);
 * - `Dropout` → {@link Dropout} (rate, noiseShape, seed; mode 'inverted', the built-in's);
 * - `SpatialDropout1D` → {@link SpatialDropout1D} (rate, seed; channels-last);
 * - `GaussianDropout` → {@link GaussianDropout} (rate);
 * - `AlphaDropout` → {@link AlphaDropout} (rate, noiseShape). **Training behaviour changes**: the
 *   built-in sets dropped units to +λα, so it shifts the mean of SELU activations; the pack's uses
 *   −λα and keeps mean 0 and variance 1 (Klambauer et al. 2017). Inference is the identity in both.
 *
 * Inference outputs are identical, except for channels-first BNs (axis ≠ −1 on rank ≥ 3), which
 * the built-in evaluates along the wrong axis (tfjs#1106) and the pack's evaluates correctly. Every
 * layer whose behaviour changes in some way carries a `note` in `converted`. Training differences
 * are those of the pack's layers: unbiased running variance by default, `trainable = false` BN in
 * inference mode, a seeded dropout drawing a new mask per call.
 *
 * @returns `{model, converted, skipped}`: a new, uncompiled functional LayersModel (the input model
 *   is untouched), the layers converted (path, classes, note) and the layers left as they were with
 *   the reason (a convertible layer inside a wrapper other than TimeDistributed).
 * @throws DropnormValueError if `model` is not a LayersModel (or is disposed) or an option is
 *   invalid; nothing is left allocated.
 */
export function convertToDropnorm(
  model: tf.LayersModel,
  options: ConvertToDropnormOptions = {},
): ConversionResult {
  const owner = 'convertToDropnorm';
  checkOptionKeys(owner, options, CONVERT_TO_DROPNORM_OPTIONS);
  assertLayersModel(owner, model);
  const varianceCorrection = options.varianceCorrection ?? 'unbiased';
  if (varianceCorrection !== 'unbiased' && varianceCorrection !== 'biased') {
    throw invalidArgument(
      owner,
      'options.varianceCorrection',
      varianceCorrection,
      "to be 'unbiased' or 'biased'",
    );
  }
  if (options.mcDropout != null && typeof options.mcDropout !== 'boolean') {
    throw invalidArgument(owner, 'options.mcDropout', options.mcDropout, 'to be true or false');
  }
  return convertBuiltinsToDropnorm(owner, model, options, 'all');
}

/**
 * Replaces every pack layer that has a built-in counterpart, in nested models and inside
 * `tf.layers.timeDistributed` wrappers too:
 * {@link BatchNorm} → `BatchNormalization` (config and weights; `num_batches_tracked` is dropped and
 * `momentum: null` becomes {@link CUMULATIVE_FALLBACK_MOMENTUM}, as the built-in has no cumulative
 * mode), {@link Dropout} → `Dropout` (rate, noiseShape, seed: a seeded built-in draws the same mask
 * at every call), {@link SpatialDropout1D} → `SpatialDropout1D`, {@link GaussianDropout} →
 * `GaussianDropout` and {@link AlphaDropout} → `AlphaDropout` (rate; the built-ins save no seed or
 * noiseShape, and the built-in AlphaDropout trains wrongly, see {@link AlphaDropout}). Inference
 * outputs are identical.
 *
 * Left as they were, each listed in `skipped` with the reason: a channels-first BatchNorm (the
 * built-in would compute wrong outputs, tfjs#1106), a BatchNorm with `renorm` or
 * `virtualBatchSize` (the built-in has neither: it would train differently), a BatchNorm whose input
 * has rank 5 or more (tfjs 4.22's built-in cannot run it; `exportForInference` exports it), a
 * `'classic'` Dropout, a channels-first
 * SpatialDropout1D, any dropout layer with `mcDropout: true` (a built-in cannot stay stochastic at
 * inference), and the layers tfjs has no counterpart for (SpatialDropout2D/3D, DropConnectDense,
 * DropBlock2D, DropPath, and the pack layers with no built-in equivalent: the per-sample
 * normalizations), and a convertible layer inside a wrapper other than TimeDistributed.
 *
 * @returns `{model, converted, skipped}`: a new, uncompiled functional LayersModel (the input model
 *   is untouched), the layers converted and the layers kept with the reason. The model loads
 *   without the pack when `skipped` is empty.
 * @throws DropnormValueError if `model` is not a LayersModel (or is disposed); nothing is left
 *   allocated.
 */
export function convertToBuiltins(model: tf.LayersModel): ConversionResult {
  const owner = 'convertToBuiltins';
  assertLayersModel(owner, model);
  const table = toBuiltinConverters();
  return convert(owner, model, (node) => {
    const name = node.layer.getClassName();
    const noBuiltin = NO_BUILTIN.get(name) ?? NO_BUILTIN_EQUIVALENT.get(name);
    if (noBuiltin) return `${noBuiltin}; kept as the pack's layer`;
    return table[name]?.(node) ?? null;
  });
}
