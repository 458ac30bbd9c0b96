/**
 * The configurations of the CNN experiment and the small conv net built under each: where dropout
 * (plain, spatial, DropBlock) and BatchNorm sit, and whether the conv before a BN has a bias.
 *
 *   input 28×28×1 → block(f₁) → block(f₂) → flatten → Dense(h) [→ BN] → ReLU → Dense(10) softmax
 *   block(f) = Conv 3×3 'same' (f filters) [→ BN] → ReLU [→ BN] → MaxPool 2×2
 */
import * as tf from '@tensorflow/tfjs';
import { layers as dn, mixSeed } from 'tfjs-dropnorm';
import { heNormalKernel, mnistImageInput, softmaxOutput } from '../lib/nets';
import { findConfig } from '../lib/options';
import { SEED_PURPOSE } from '../lib/random';
import { Uout } from './uout';

/** The net's size and the regularizers' rates. */
export interface CnnOptions {
  /** Filters of the two conv layers. */
  filters1: number;
  filters2: number;
  /** Units of the hidden Dense layer. */
  dense: number;
  /** Rate of plain dropout (after the dense layer, or before a BN). */
  rate: number;
  /** Rate of SpatialDropout2D and DropBlock2D on the feature maps. */
  spatialRate: number;
  /** DropBlock2D's block side. */
  blockSize: number;
  /** Momentum of every BN's moving averages. */
  bnMomentum: number;
  /** β of Uout: its noise u ~ U(−β, β). */
  uoutBeta: number;
  /** Average-pool the 28×28 digits by this factor first (1: no pooling; 2: 14×14, four times cheaper). */
  inputPool: number;
}

/** Where BatchNorm sits in each block: nowhere, between the linear layer and ReLU, or after ReLU. */
export type BatchNormPlace = 'none' | 'before-relu' | 'after-relu';

/** Where dropout sits. */
export type DropoutPlace =
  | 'none'
  /** Dropout(rate) after the hidden Dense layer's ReLU. */
  | 'dense'
  /** SpatialDropout2D(spatialRate) after each conv block. */
  | 'spatial'
  /** DropBlock2D(spatialRate, blockSize) after each conv block. */
  | 'block'
  /** Dropout(rate) in front of every linear layer followed by a BN, except the first conv. */
  | 'before-bn'
  /** Dropout(rate) after the last BN (after the hidden Dense layer's BN → ReLU). */
  | 'after-last-bn'
  /** GaussianDropout(rate) where 'before-bn' puts Dropout: the same noise variance p/(1 − p). */
  | 'gaussian-before-bn'
  /** Uout(β = uoutBeta) where 'before-bn' puts Dropout (Li et al. 2019's remedy). */
  | 'uout-before-bn';

/** One configuration. */
export interface CnnConfig {
  id: string;
  label: string;
  batchNorm: BatchNormPlace;
  /** Whether the conv and Dense layers feeding a BN (or the ReLU) have a bias. */
  bias: boolean;
  dropout: DropoutPlace;
}

/** The twelve configurations, baseline first. */
export const CONFIGS: readonly CnnConfig[] = [
  { id: 'none', label: 'No regularization', batchNorm: 'none', bias: true, dropout: 'none' },
  {
    id: 'dropout',
    label: 'Dropout after the dense layer',
    batchNorm: 'none',
    bias: true,
    dropout: 'dense',
  },
  {
    id: 'spatial-dropout',
    label: 'SpatialDropout2D after each conv block',
    batchNorm: 'none',
    bias: true,
    dropout: 'spatial',
  },
  {
    id: 'dropblock',
    label: 'DropBlock2D after each conv block',
    batchNorm: 'none',
    bias: true,
    dropout: 'block',
  },
  {
    id: 'bn',
    label: 'BN before ReLU, no bias',
    batchNorm: 'before-relu',
    bias: false,
    dropout: 'none',
  },
  {
    id: 'bn-bias',
    label: 'BN before ReLU, with bias',
    batchNorm: 'before-relu',
    bias: true,
    dropout: 'none',
  },
  {
    id: 'bn-after-relu',
    label: 'BN after ReLU',
    batchNorm: 'after-relu',
    bias: true,
    dropout: 'none',
  },
  {
    id: 'bn-dropout-before',
    label: 'BN, dropout before each later BN',
    batchNorm: 'before-relu',
    bias: false,
    dropout: 'before-bn',
  },
  {
    id: 'no-bn-dropout-before',
    label: 'No BN, the same two dropouts (control)',
    batchNorm: 'none',
    bias: true,
    dropout: 'before-bn',
  },
  {
    id: 'bn-gaussian-before',
    label: 'BN, Gaussian dropout before each later BN',
    batchNorm: 'before-relu',
    bias: false,
    dropout: 'gaussian-before-bn',
  },
  {
    id: 'bn-uout-before',
    label: 'BN, Uout before each later BN',
    batchNorm: 'before-relu',
    bias: false,
    dropout: 'uout-before-bn',
  },
  {
    id: 'bn-dropout-after',
    label: 'BN, dropout after the last BN',
    batchNorm: 'before-relu',
    bias: false,
    dropout: 'after-last-bn',
  },
];

/** The configuration every other one is compared with. */
export const BASELINE = 'none';

/** The configuration's entry in {@link CONFIGS}. */
export function configById(id: string): CnnConfig {
  return findConfig('cnn-dropout-bn', CONFIGS, id);
}

/** What a configuration adds to the plain net, for the report. */
export function describeConfig(config: CnnConfig, o: CnnOptions): string {
  const parts: string[] = [];
  if (config.batchNorm === 'before-relu') {
    parts.push(
      `\`layers.batchNorm()\` between each conv / Dense and its ReLU (${config.bias ? 'with' : 'without'} bias)`,
    );
  } else if (config.batchNorm === 'after-relu') {
    parts.push('`layers.batchNorm()` after each ReLU');
  }
  const drop = {
    none: '',
    dense: `\`layers.dropout({rate: ${o.rate}})\` after the dense layer`,
    spatial: `\`layers.spatialDropout2d({rate: ${o.spatialRate}})\` after each conv block`,
    block: `\`layers.dropBlock2d({rate: ${o.spatialRate}, blockSize: ${o.blockSize}})\` after each conv block`,
    'before-bn': `\`layers.dropout({rate: ${o.rate}})\` before the second conv and before the Dense layer${config.batchNorm === 'none' ? ' (no BN: the control of the BN configuration with these dropouts)' : ' (each followed by a BN)'}`,
    'gaussian-before-bn': `\`layers.gaussianDropout({rate: ${o.rate}})\` (noise variance p/(1 − p) = ${(o.rate / (1 - o.rate)).toPrecision(3)}) before the second conv and before the Dense layer`,
    'uout-before-bn': `Uout (x·(1 + u), u ~ U(−${o.uoutBeta}, ${o.uoutBeta}), noise variance β²/3 = ${((o.uoutBeta * o.uoutBeta) / 3).toPrecision(3)}) before the second conv and before the Dense layer`,
    'after-last-bn': `\`layers.dropout({rate: ${o.rate}})\` after the Dense layer's BN → ReLU`,
  }[config.dropout];
  if (drop) parts.push(drop);
  return parts.length ? parts.join('; ') : 'the plain CNN';
}

/**
 * The CNN of a configuration. Kernels are He-normal, seeded by (seed, layer index), so every
 * configuration of a seed starts from the same kernels; the dropout layers' seeds are derived
 * from (seed, layer index) too.
 */
export function buildModel(config: CnnConfig, o: CnnOptions, seed: number): tf.Sequential {
  const model = tf.sequential({ name: config.id });
  const dropSeed = (k: number) => mixSeed(seed, SEED_PURPOSE.layer, k);
  const add = (layer: tf.layers.Layer) => model.add(layer);
  const bn = config.batchNorm;
  const activate = () => {
    if (bn === 'before-relu') add(dn.batchNorm({ momentum: o.bnMomentum }));
    add(tf.layers.activation({ activation: 'relu' }));
    if (bn === 'after-relu') add(dn.batchNorm({ momentum: o.bnMomentum }));
  };
  const beforeLinear = (k: number) => {
    if (k === 0) return;
    if (config.dropout === 'before-bn') add(dn.dropout({ rate: o.rate, seed: dropSeed(k) }));
    if (config.dropout === 'gaussian-before-bn') {
      add(dn.gaussianDropout({ rate: o.rate, seed: dropSeed(k) }));
    }
    if (config.dropout === 'uout-before-bn') add(new Uout({ rate: o.uoutBeta, seed: dropSeed(k) }));
  };

  mnistImageInput(o.inputPool).forEach(add);
  [o.filters1, o.filters2].forEach((filters, k) => {
    beforeLinear(k);
    add(
      tf.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: config.bias,
        kernelInitializer: heNormalKernel(seed, k),
      }),
    );
    activate();
    add(tf.layers.maxPooling2d({ poolSize: 2 }));
    if (config.dropout === 'spatial') {
      add(dn.spatialDropout2d({ rate: o.spatialRate, seed: dropSeed(k) }));
    } else if (config.dropout === 'block') {
      add(dn.dropBlock2d({ rate: o.spatialRate, blockSize: o.blockSize, seed: dropSeed(k) }));
    }
  });
  add(tf.layers.flatten());
  beforeLinear(2);
  add(
    tf.layers.dense({
      units: o.dense,
      useBias: config.bias,
      kernelInitializer: heNormalKernel(seed, 2),
    }),
  );
  activate();
  if (config.dropout === 'dense' || config.dropout === 'after-last-bn') {
    add(dn.dropout({ rate: o.rate, seed: dropSeed(2) }));
  }
  add(softmaxOutput(seed, 3));
  return model;
}
