/**
 * The settings (batch size and how batches are drawn) and normalization configurations of the
 * small-batch experiment, and the CNN built under each.
 *
 *   digits 28×28 [→ AvgPool] → Conv 3×3 (f₁) → [norm] → ReLU → MaxPool → Conv 3×3 (f₂) → [norm] →
 *   ReLU → MaxPool → Dense (h) → [norm] → ReLU → Dense (10) softmax
 */
import * as tf from '@tensorflow/tfjs';
import { layers as dn } from 'tfjs-dropnorm';
import { heNormalKernel, mnistImageInput, softmaxOutput } from '../lib/nets';
import { findConfig } from '../lib/options';

/** How a setting draws its training batches. */
export type Stream = 'iid' | 'two-class';

/** One training setting: a batch size and a way to draw batches. */
export interface Setting {
  id: string;
  label: string;
  batchSize: number;
  stream: Stream;
}

/** The settings for the batch sizes asked for, then the non-i.i.d. stream. */
export function settings(batchSizes: readonly number[], nonIidBatch: number): Setting[] {
  return [
    ...batchSizes.map((b): Setting => ({
      id: `b${b}`,
      label: `batch ${b}`,
      batchSize: b,
      stream: 'iid',
    })),
    ...(nonIidBatch > 0
      ? [
          {
            id: 'two-class',
            label: `batch ${nonIidBatch}, two classes`,
            batchSize: nonIidBatch,
            stream: 'two-class' as const,
          },
        ]
      : []),
  ];
}

/** The normalization of a configuration. */
export type NormKind =
  | 'none'
  | 'builtin'
  | 'bn'
  | 'conv-bn'
  | 'renorm'
  | 'ghost'
  | 'ghost-renorm'
  | 'groupnorm'
  | 'layernorm';

/** One configuration (a trained net); 'bn + recalibrate' is an evaluation of the 'bn' net. */
export interface NormConfig {
  id: NormKind;
  label: string;
  /** Only for settings with at least this batch size (Ghost BN needs several virtual batches). */
  minBatch?: number;
}

/** The configurations, in report order. */
export const CONFIGS: readonly NormConfig[] = [
  { id: 'builtin', label: 'built-in BN' },
  { id: 'bn', label: "pack BN ('unbiased')" },
  { id: 'renorm', label: 'Batch Renorm' },
  { id: 'conv-bn', label: 'pack BN after the convs only' },
  { id: 'ghost', label: 'Ghost BN', minBatch: 16 },
  { id: 'ghost-renorm', label: 'Ghost BN + renorm', minBatch: 16 },
  { id: 'groupnorm', label: 'GroupNorm (4 channels per group)' },
  { id: 'layernorm', label: 'LayerNorm' },
  { id: 'none', label: 'no normalization' },
];

/** The label of the recalibrated evaluation of the 'bn' net. */
export const RECALIBRATED_LABEL = 'pack BN + recalibrateBatchNorm';

/** The configuration's entry in {@link CONFIGS}. */
export function configById(id: string): NormConfig {
  return findConfig('small-batch', CONFIGS, id);
}

/** Whether configuration `config` runs in `setting`. */
export function runsIn(config: NormConfig, setting: Setting): boolean {
  return setting.batchSize >= (config.minBatch ?? 0);
}

/** The net's size and the normalization settings. */
export interface NetOptions {
  filters1: number;
  filters2: number;
  dense: number;
  /** Average-pool the 28×28 digits by this factor first (2: 14×14, four times cheaper). */
  inputPool: number;
  /** Momentum of every BN's moving averages (which Batch Renorm's r and d are taken against). */
  bnMomentum: number;
  /** Ghost BN's virtual batch size. */
  virtualBatchSize: number;
  /** Batch Renorm's final clipping, reached by a ramp over the training steps. */
  rmax: number;
  dmax: number;
  /** Training steps (the ramp is laid out over them). */
  steps: number;
}

/**
 * The renorm ramp over `steps`: plain BN for the first 5%, r_max reaching its final value at 50%
 * and d_max at 30% of training, the proportions of the paper's schedule (Ioffe 2017, Section 4:
 * 5k steps of plain BN, d_max relaxed until 25k and r_max until 40k steps) on a short run.
 */
export function renormRamp(steps: number): { start: number; rmaxEnd: number; dmaxEnd: number } {
  const start = Math.round(0.05 * steps);
  return {
    start,
    rmaxEnd: Math.max(start + 1, Math.round(0.5 * steps)),
    dmaxEnd: Math.max(start + 1, Math.round(0.3 * steps)),
  };
}

/** Channels per GroupNorm group: 2, 4 and 8 groups on 8, 16 and 32 channels (Wu & He 2018 §4 find
 * 2–16 channels per group within 1 point of their best). */
export const CHANNELS_PER_GROUP = 4;

/**
 * The normalization layer of `kind` after a layer with `channels` outputs of rank `rank` (null for
 * 'none', and for 'conv-bn' after the dense layer).
 */
function normLayer(
  kind: NormKind,
  o: NetOptions,
  channels: number,
  rank: number,
): tf.layers.Layer | null {
  const momentum = o.bnMomentum;
  const renormArgs = {
    renorm: true,
    renormClipping: { rmax: o.rmax, dmax: o.dmax },
    renormRamp: renormRamp(o.steps),
  };
  switch (kind) {
    case 'none':
      return null;
    case 'conv-bn':
      return rank === 4 ? dn.batchNorm({ momentum }) : null;
    case 'groupnorm':
      return dn.groupNorm({ groups: Math.max(1, Math.round(channels / CHANNELS_PER_GROUP)) });
    case 'layernorm':
      // Wu & He's LN: over every non-batch axis (H, W, C of a conv's output) with a per-channel
      // scale and offset, i.e. GroupNorm with one group (the pack's compare rows check it equals
      // tf.layers.layerNormalization over those axes). tf.layers.layerNormalization itself trains
      // about 10× slower here on wasm (a quick run at batch 32: 50 s against 4 s).
      return dn.groupNorm({ groups: 1 });
    case 'ghost-renorm':
      return dn.batchNorm({ momentum, virtualBatchSize: o.virtualBatchSize, ...renormArgs });
    case 'builtin':
      return tf.layers.batchNormalization({ momentum });
    case 'bn':
      return dn.batchNorm({ momentum });
    case 'renorm':
      return dn.batchNorm({ momentum, ...renormArgs });
    case 'ghost':
      return dn.batchNorm({ momentum, virtualBatchSize: o.virtualBatchSize });
  }
}

/** What a configuration puts between each linear layer and its ReLU, for the report. */
export function describeConfig(kind: NormKind, o: NetOptions): string {
  const ramp = renormRamp(o.steps);
  return {
    none: 'nothing (the linear layers keep their bias)',
    builtin: `\`tf.layers.batchNormalization({momentum: ${o.bnMomentum}})\` (biased running variance)`,
    bn: `\`layers.batchNorm({momentum: ${o.bnMomentum}})\` (unbiased running variance)`,
    renorm:
      `\`layers.batchNorm({momentum: ${o.bnMomentum}, renorm: true, renormClipping: {rmax: ${o.rmax}, ` +
      `dmax: ${o.dmax}}, renormRamp: {start: ${ramp.start}, rmaxEnd: ${ramp.rmaxEnd}, dmaxEnd: ` +
      `${ramp.dmaxEnd}}})\` (r and d against the moving statistics)`,
    ghost: `\`layers.batchNorm({momentum: ${o.bnMomentum}, virtualBatchSize: ${o.virtualBatchSize}})\``,
    'ghost-renorm': `\`layers.batchNorm({momentum: ${o.bnMomentum}, virtualBatchSize: ${o.virtualBatchSize}, renorm: true, …})\` (the renorm settings above, per virtual batch)`,
    'conv-bn': `\`layers.batchNorm({momentum: ${o.bnMomentum}})\` after the two convs; the dense layer unnormalized (with bias)`,
    groupnorm: `\`layers.groupNorm({groups: C/${CHANNELS_PER_GROUP}})\`: ${o.filters1 / CHANNELS_PER_GROUP}, ${o.filters2 / CHANNELS_PER_GROUP} and ${o.dense / CHANNELS_PER_GROUP} groups on ${o.filters1}, ${o.filters2} and ${o.dense} channels (Wu & He 2018)`,
    layernorm:
      "`layers.groupNorm({groups: 1})`: Wu & He's LayerNorm over H, W, C after a conv and over the units after the dense layer (what `tf.layers.layerNormalization` over those axes computes, with a per-channel scale and offset; the tfjs layer trains about 10× slower on wasm)",
  }[kind];
}

/**
 * The CNN of a configuration. Kernels are He-normal, seeded by (seed, layer index), so every
 * configuration of a seed starts from the same kernels; a linear layer feeding a BN has no bias.
 */
export function buildModel(kind: NormKind, o: NetOptions, seed: number): tf.Sequential {
  const model = tf.sequential({ name: kind });
  const useBias = (rank: number) => kind === 'none' || (kind === 'conv-bn' && rank === 2);
  const activate = (channels: number, rank: number) => {
    const norm = normLayer(kind, o, channels, rank);
    if (norm) model.add(norm);
    model.add(tf.layers.activation({ activation: 'relu' }));
  };
  mnistImageInput(o.inputPool).forEach((layer) => model.add(layer));
  [o.filters1, o.filters2].forEach((filters, k) => {
    model.add(
      tf.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: useBias(4),
        kernelInitializer: heNormalKernel(seed, k),
      }),
    );
    activate(filters, 4);
    model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  });
  model.add(tf.layers.flatten());
  model.add(
    tf.layers.dense({
      units: o.dense,
      useBias: useBias(2),
      kernelInitializer: heNormalKernel(seed, 2),
    }),
  );
  activate(o.dense, 2);
  model.add(softmaxOutput(seed, 3));
  return model;
}

/** The model's normalization layers (built-in or the pack's), input side first. */
export function normLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.filter((l) =>
    ['BatchNormalization', 'DropnormBatchNorm'].includes(l.getClassName()),
  );
}
