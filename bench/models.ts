/**
 * Pretrained-style models built from tf.layers, shared by the exportForInference tests and
 * `npm run bench`: the layer patterns of Keras's MobileNetV2 and InceptionV3, with seeded weights
 * and non-trivial BatchNorm statistics (as after training), at any input size.
 */
import * as tf from '@tensorflow/tfjs';

type Sym = tf.SymbolicTensor;

/** Options of {@link mobileNetV2Like}. */
export interface MobileNetV2Options {
  /** Square input size (default 224; any multiple of 32 keeps Keras's shapes). */
  inputSize?: number;
  /** Width multiplier (Keras `alpha`, default 1). */
  alpha?: number;
  /** Output classes (default 1000). */
  classes?: number;
  /** Dropout rate before the classifier (default 0.2). */
  dropout?: number;
  /** Seed of every initializer and of the BatchNorm statistics (default 1). */
  seed?: number;
}

/** Keras's `_make_divisible`: channels rounded to a multiple of 8, never below 90% of `v`. */
function makeDivisible(v: number, divisor = 8): number {
  const n = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return n < 0.9 * v ? n + divisor : n;
}

/**
 * MobileNetV2 (Sandler et al. 2018) as Keras builds it: ZeroPadding2D + 3×3 stride-2 Conv2D without
 * bias, 17 inverted-residual blocks (1×1 expansion Conv2D, DepthwiseConv2D, 1×1 projection Conv2D,
 * each followed by BatchNormalization (ε = 1e-3), ReLU with maxValue 6 after the first two, a
 * residual Add where shapes allow), a 1×1 Conv2D to 1280 channels, global average pooling,
 * Dropout and a softmax Dense: 158 layers, 52 of them BatchNormalization.
 */
export function mobileNetV2Like(options: MobileNetV2Options = {}): tf.LayersModel {
  const { inputSize = 224, alpha = 1, classes = 1000, dropout = 0.2, seed = 1 } = options;
  let next = seed * 1000;
  const init = () => tf.initializers.heNormal({ seed: next++ });
  const bn = (name: string) =>
    tf.layers.batchNormalization({ epsilon: 1e-3, momentum: 0.999, name });
  const relu6 = (name: string) => tf.layers.reLU({ maxValue: 6, name });
  const apply = (layer: tf.layers.Layer, x: Sym | Sym[]) => layer.apply(x) as Sym;

  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
  let x = apply(
    tf.layers.zeroPadding2d({
      padding: [
        [0, 1],
        [0, 1],
      ],
      name: 'Conv1_pad',
    }),
    input,
  );
  const stem = makeDivisible(32 * alpha);
  x = apply(
    tf.layers.conv2d({
      filters: stem,
      kernelSize: 3,
      strides: 2,
      padding: 'valid',
      useBias: false,
      kernelInitializer: init(),
      name: 'Conv1',
    }),
    x,
  );
  x = apply(relu6('Conv1_relu'), apply(bn('bn_Conv1'), x));

  // [expansion, channels, repeats, first stride] per stage, as in the paper's Table 2.
  const stages: Array<[number, number, number, number]> = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
  ];
  let channels = stem;
  let block = 0;
  for (const [t, c, n, s] of stages) {
    const out = makeDivisible(c * alpha);
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      const p = block === 0 ? 'expanded_conv_' : `block_${block}_`;
      let h = x;
      if (t !== 1) {
        h = apply(
          tf.layers.conv2d({
            filters: channels * t,
            kernelSize: 1,
            useBias: false,
            kernelInitializer: init(),
            name: `${p}expand`,
          }),
          h,
        );
        h = apply(relu6(`${p}expand_relu`), apply(bn(`${p}expand_BN`), h));
      }
      if (stride === 2) {
        h = apply(
          tf.layers.zeroPadding2d({
            padding: [
              [0, 1],
              [0, 1],
            ],
            name: `${p}pad`,
          }),
          h,
        );
      }
      h = apply(
        tf.layers.depthwiseConv2d({
          kernelSize: 3,
          strides: stride,
          padding: stride === 2 ? 'valid' : 'same',
          useBias: false,
          depthwiseInitializer: init(),
          name: `${p}depthwise`,
        }),
        h,
      );
      h = apply(relu6(`${p}depthwise_relu`), apply(bn(`${p}depthwise_BN`), h));
      h = apply(
        tf.layers.conv2d({
          filters: out,
          kernelSize: 1,
          useBias: false,
          kernelInitializer: init(),
          name: `${p}project`,
        }),
        h,
      );
      h = apply(bn(`${p}project_BN`), h);
      x = stride === 1 && channels === out ? apply(tf.layers.add({ name: `${p}add` }), [x, h]) : h;
      channels = out;
      block++;
    }
  }
  const last = alpha > 1 ? makeDivisible(1280 * alpha) : 1280;
  x = apply(
    tf.layers.conv2d({
      filters: last,
      kernelSize: 1,
      useBias: false,
      kernelInitializer: init(),
      name: 'Conv_1',
    }),
    x,
  );
  x = apply(relu6('out_relu'), apply(bn('Conv_1_bn'), x));
  x = apply(tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }), x);
  x = apply(tf.layers.dropout({ rate: dropout, name: 'dropout' }), x);
  x = apply(
    tf.layers.dense({
      units: classes,
      activation: 'softmax',
      kernelInitializer: tf.initializers.glorotUniform({ seed: next++ }),
      name: 'predictions',
    }),
    x,
  );
  const model = tf.model({ inputs: input, outputs: x, name: 'mobilenetv2_like' });
  randomizeBatchNormStatistics(model, seed);
  return model;
}

/** Options of {@link inceptionLike}. */
export interface InceptionOptions {
  /** Square input size (default 32). */
  inputSize?: number;
  /** Output classes (default 10). */
  classes?: number;
  /** Inception blocks (default 2). */
  blocks?: number;
  /** Seed of every initializer and of the BatchNorm statistics (default 2). */
  seed?: number;
}

/**
 * The InceptionV3 pattern (Szegedy et al. 2016) as Keras builds it: every convolution is
 * `conv2d_bn` (Conv2D without bias, BatchNormalization with `scale: false`, Activation 'relu'); a
 * block concatenates four branches (1×1; 1×1 → 3×3; 1×1 → 3×3 → 3×3; 3×3 average pooling → 1×1);
 * then global average pooling, Dropout and a softmax Dense.
 */
export function inceptionLike(options: InceptionOptions = {}): tf.LayersModel {
  const { inputSize = 32, classes = 10, blocks = 2, seed = 2 } = options;
  let next = seed * 1000;
  let count = 0;
  const convBn = (x: Sym, filters: number, k: number, strides = 1, padding = 'same') => {
    const i = count++;
    let h = tf.layers
      .conv2d({
        filters,
        kernelSize: k,
        strides,
        padding: padding as 'same' | 'valid',
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: next++ }),
        name: `conv2d_${i}`,
      })
      .apply(x) as Sym;
    h = tf.layers
      .batchNormalization({ scale: false, epsilon: 1e-3, name: `batch_normalization_${i}` })
      .apply(h) as Sym;
    return tf.layers.activation({ activation: 'relu', name: `activation_${i}` }).apply(h) as Sym;
  };
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
  let x = convBn(input, 16, 3, 2, 'valid');
  x = convBn(x, 24, 3);
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'max_pool' }).apply(x) as Sym;
  for (let b = 0; b < blocks; b++) {
    const b1 = convBn(x, 16, 1);
    const b2 = convBn(convBn(x, 12, 1), 16, 3);
    const b3 = convBn(convBn(convBn(x, 8, 1), 12, 3), 12, 3);
    const pool = tf.layers
      .averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: `avg_pool_${b}` })
      .apply(x) as Sym;
    const b4 = convBn(pool, 8, 1);
    x = tf.layers.concatenate({ name: `mixed_${b}` }).apply([b1, b2, b3, b4]) as Sym;
  }
  x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as Sym;
  x = tf.layers.dropout({ rate: 0.3, name: 'dropout' }).apply(x) as Sym;
  x = tf.layers
    .dense({
      units: classes,
      activation: 'softmax',
      kernelInitializer: tf.initializers.glorotUniform({ seed: next++ }),
      name: 'predictions',
    })
    .apply(x) as Sym;
  const model = tf.model({ inputs: input, outputs: x, name: 'inception_like' });
  randomizeBatchNormStatistics(model, seed);
  return model;
}

/**
 * Gives every BatchNorm of `model` (built-in or the pack's) seeded statistics as after training:
 * γ ~ U(0.5, 1.5), β ~ N(0, 0.2), moving mean ~ N(0, 0.5), moving variance ~ U(0.5, 2).
 */
export function randomizeBatchNormStatistics(model: tf.LayersModel, seed: number): void {
  model.layers.forEach((layer, i) => {
    const name = layer.getClassName();
    if (name !== 'BatchNormalization' && name !== 'DropnormBatchNorm') return;
    for (const [j, w] of layer.weights.entries()) {
      const s = seed * 100003 + i * 17 + j;
      const kind = w.originalName.split('/').pop()!;
      const shape = w.shape as number[];
      const value =
        kind === 'gamma'
          ? tf.randomUniform(shape, 0.5, 1.5, 'float32', s)
          : kind === 'beta'
            ? tf.randomNormal(shape, 0, 0.2, 'float32', s)
            : kind === 'moving_mean'
              ? tf.randomNormal(shape, 0, 0.5, 'float32', s)
              : kind === 'moving_variance'
                ? tf.randomUniform(shape, 0.5, 2, 'float32', s)
                : null;
      if (value) {
        w.write(value);
        value.dispose();
      }
    }
  });
}
