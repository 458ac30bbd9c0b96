/**
 * The two models of the quantization experiment and bench:
 * - nsfwjs's MobileNetV2 (MIT, a devDependency): a Keras MobileNetV2 layers model (224×224, 52
 *   BatchNormalization, ReLU6, a 5-class softmax head) whose weights the package ships already
 *   quantized per tensor to uint8; `tf.loadLayersModel` dequantizes them, and that float model is
 *   the reference ("its own float predictions").
 * - a MobileNetV2-shaped model trained here on MNIST (bench/models.ts's builder, 32×32 input).
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

/** nsfwjs's MobileNetV2, loaded with plain tfjs from the files the package ships. */
export async function loadNsfwMobileNetV2(): Promise<tf.LayersModel> {
  // 'nsfwjs' resolves to dist/cjs/index.js; the models sit in dist/models.
  const root = path.resolve(path.dirname(require.resolve('nsfwjs')), '../models/mobilenet_v2');
  // The package ships model.json and its one weight shard as UMD modules (JSON and base64).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const json = require(path.join(root, 'model.min.js')) as {
    modelTopology: object;
    weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[];
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const shard = require(path.join(root, 'group1-shard1of1.min.js')) as string;
  const bytes = Buffer.from(shard, 'base64');
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
      weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
    }),
  );
}

/**
 * A small MobileNetV2 (Sandler et al. 2018) for 28×28×1 digits, quick to train: a 3×3 stride-2
 * stem, four inverted-residual blocks (1×1 expansion, 3×3 depthwise, 1×1 linear projection, each
 * followed by BatchNormalization, ReLU6 after the first two, a residual Add where shapes allow), a
 * 1×1 conv to 64 channels, global average pooling, dropout and a softmax Dense. 15 BatchNorms.
 */
export function smallMobileNetV2(seed: number): tf.LayersModel {
  let next = seed * 1000;
  const init = () => tf.initializers.heNormal({ seed: next++ });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) =>
    layer.apply(x) as tf.SymbolicTensor;
  const bn = (x: tf.SymbolicTensor) =>
    apply(tf.layers.batchNormalization({ epsilon: 1e-3, momentum: 0.99 }), x);
  const relu6 = (x: tf.SymbolicTensor) => apply(tf.layers.reLU({ maxValue: 6 }), x);
  const conv = (x: tf.SymbolicTensor, filters: number, kernelSize = 1, strides = 1) =>
    apply(
      tf.layers.conv2d({
        filters,
        kernelSize,
        strides,
        padding: 'same',
        useBias: false,
        kernelInitializer: init(),
      }),
      x,
    );
  const input = tf.input({ shape: [28, 28, 1] });
  let x = relu6(bn(conv(input, 16, 3, 2)));
  let channels = 16;
  const blocks: Array<[number, number, number]> = [
    [1, 8, 1],
    [4, 16, 2],
    [4, 16, 1],
    [4, 24, 2],
  ];
  for (const [t, out, stride] of blocks) {
    let h = x;
    if (t !== 1) h = relu6(bn(conv(h, channels * t)));
    h = relu6(
      bn(
        apply(
          tf.layers.depthwiseConv2d({
            kernelSize: 3,
            strides: stride,
            padding: 'same',
            useBias: false,
            depthwiseInitializer: init(),
          }),
          h,
        ),
      ),
    );
    h = bn(conv(h, out));
    x = stride === 1 && out === channels ? apply(tf.layers.add(), [x, h]) : h;
    channels = out;
  }
  x = relu6(bn(conv(x, 64)));
  x = apply(tf.layers.globalAveragePooling2d({}), x);
  x = apply(tf.layers.dropout({ rate: 0.2 }), x);
  x = apply(
    tf.layers.dense({
      units: 10,
      activation: 'softmax',
      kernelInitializer: tf.initializers.glorotUniform({ seed: next++ }),
    }),
    x,
  );
  return tf.model({ inputs: input, outputs: x, name: 'small_mobilenet_v2' });
}

/** The artifacts a save handler receives, kept in memory. */
export function capture(): { handler: tf.io.IOHandler; get(): tf.io.ModelArtifacts } {
  let artifacts: tf.io.ModelArtifacts | null = null;
  return {
    handler: tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }),
    get: () => artifacts!,
  };
}
