/**
 * Geometry shared by the gradient kernels: the convolution described by a kernel's attributes
 * (tfjs-core's `computeConv2DInfo`, the same call the cpu kernels make), shape checks with
 * messages that name the mismatch, and, per spatial axis, the zero padding (or crop) that turns a
 * gradient into a plain convolution with non-negative padding.
 */
import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';
import type { KernelScope } from './backend';

/** tfjs-core's description of a 2-D convolution (shapes, strides, dilations, padding). */
export type ConvInfo = tf.backend_util.Conv2DInfo;

/** A kernel attribute tfjs types loosely (number, pair, string, nested arrays). */
type Attr = tf.NamedAttrMap[string];

/** The convolution a backprop kernel differentiates, from the kernel's attributes. */
export function convInfo(
  xShape: number[],
  filterShape: number[],
  attrs: tf.NamedAttrMap,
  depthwise: boolean,
): ConvInfo {
  const dilations = (attrs.dilations as Attr) ?? 1;
  const dataFormat = tf.backend_util.convertConv2DDataFormat(
    ((attrs.dataFormat as string | undefined) ?? 'NHWC') as 'NHWC' | 'NCHW',
  );
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as number | [number, number],
    dilations as number | [number, number],
    attrs.pad as Parameters<typeof tf.backend_util.computeConv2DInfo>[4],
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    depthwise,
    dataFormat,
  );
}

/** Throws unless `shape` is a rank-4 shape. */
export function checkRank4(owner: string, name: string, shape: readonly number[]): void {
  if (shape.length !== 4) {
    throw invalidArgument(owner, `${name}.shape`, shape, 'to have rank 4');
  }
}

/** The inputs of a filter-gradient kernel (x, dy and the filterShape attribute), rank-4 checked. */
export function filterGradInputs(
  owner: string,
  { inputs, attrs = {} }: Parameters<tf.KernelFunc>[0],
): { x: tf.TensorInfo; dy: tf.TensorInfo; filterShape: number[] } {
  const x = inputs.x!;
  const dy = inputs.dy!;
  const filterShape = attrs.filterShape as number[];
  checkRank4(owner, 'x', x.shape);
  checkRank4(owner, 'dy', dy.shape);
  checkRank4(owner, 'filter', filterShape);
  return { x, dy, filterShape };
}

/** Whether x or dy has no element (the gradient is then all zeros). */
export function isEmpty(xShape: number[], dyShape: number[]): boolean {
  return tf.util.sizeFromShape(xShape) === 0 || tf.util.sizeFromShape(dyShape) === 0;
}

/**
 * Throws unless `dy` has the output shape of the convolution. A mismatch means the attributes do
 * not describe the forward pass that produced `dy`; tfjs-core's conv2d gradient is one way to get
 * there, since it does not pass `dimRoundingMode` on.
 */
export function checkOutputShape(owner: string, dyShape: number[], info: ConvInfo): void {
  const expected = info.outShape;
  if (dyShape.length === 4 && dyShape.every((d, i) => d === expected[i])) return;
  throw invalidArgument(
    owner,
    'dy.shape',
    dyShape,
    `to be ${JSON.stringify(expected)}, the output shape that the input shape, filter shape, ` +
      'strides, pad and dimRoundingMode attributes give',
    'A gradient for a dy of another size would be wrong. tfjs-core differentiates conv2d without ' +
      'passing dimRoundingMode on, so a forward pass whose output size depends on the rounding ' +
      "cannot be differentiated: use pad 'same' or 'valid', or explicit pads with which " +
      '(input + pads − filter) is divisible by the stride.',
  );
}

/**
 * One spatial axis of a filter gradient computed as a convolution over the input: the input, padded
 * by `before` and read from there, must cover `(taps − 1)·tapStep + (outputs − 1)·outputStep + 1`
 * positions. Returns the padding before and after, and how many input positions to keep (fewer
 * than the input when the forward pass never read the last ones).
 */
export function filterGradAxis(
  inputLength: number,
  before: number,
  taps: number,
  tapStep: number,
  outputs: number,
  outputStep: number,
): { before: number; after: number; keep: number } {
  const extent = (taps - 1) * tapStep + (outputs - 1) * outputStep + 1;
  const after = extent - before - inputLength;
  return { before, after: Math.max(0, after), keep: Math.min(inputLength, extent - before) };
}

/**
 * {@link filterGradAxis} on both spatial axes of `info`: the filter's taps `dilation` apart, dy's
 * positions `stride` apart.
 */
export function filterGradAxes(info: ConvInfo): {
  rows: ReturnType<typeof filterGradAxis>;
  cols: ReturnType<typeof filterGradAxis>;
} {
  return {
    rows: filterGradAxis(
      info.inHeight,
      info.padInfo.top,
      info.filterHeight,
      info.dilationHeight,
      info.outHeight,
      info.strideHeight,
    ),
    cols: filterGradAxis(
      info.inWidth,
      info.padInfo.left,
      info.filterWidth,
      info.dilationWidth,
      info.outWidth,
      info.strideWidth,
    ),
  };
}

/** The explicit NHWC `pad` attribute of an internal convolution padded by `rows` and `cols`. */
export function explicitPad(
  rows: { before: number; after: number },
  cols: { before: number; after: number },
): number[][] {
  return [
    [0, 0],
    [rows.before, rows.after],
    [cols.before, cols.after],
    [0, 0],
  ];
}

/**
 * The attributes of a filter gradient computed as the convolution of x' (x as [C, H, W, B]) with
 * dy' (dy as [H', W', B, …], a filter of the output's spatial size): dy's positions are its taps,
 * `stride` apart in x, and the filter's taps its outputs, `dilation` apart; `rows` and `cols`
 * from {@link filterGradAxes}.
 */
export function filterGradConvAttrs(
  info: ConvInfo,
  rows: { before: number; after: number },
  cols: { before: number; after: number },
): tf.NamedAttrMap {
  return {
    strides: [info.dilationHeight, info.dilationWidth],
    pad: explicitPad(rows, cols),
    dataFormat: 'NHWC',
    dilations: [info.strideHeight, info.strideWidth],
  };
}

/**
 * x' (x as [C, H, W, B]) without the input rows and columns past the last window, which the
 * forward pass never read: cropped, as padding cannot be negative; x' itself when nothing is.
 */
export function cropUnread(
  scope: KernelScope,
  xT: tf.TensorInfo,
  info: ConvInfo,
  rows: { keep: number },
  cols: { keep: number },
): tf.TensorInfo {
  if (rows.keep >= info.inHeight && cols.keep >= info.inWidth) return xT;
  const { inChannels: c, batchSize: b } = info;
  return scope.window(
    xT,
    [c, info.inHeight, info.inWidth * b],
    [0, 0, 0],
    [c, rows.keep, cols.keep * b],
    [c, rows.keep, cols.keep, b],
  );
}

/**
 * One spatial axis of an input gradient computed as a convolution of the (stride-dilated) output
 * gradient, of `length` positions, with the flipped filter: `reach − 1 − padBefore` positions of
 * zero padding before it (`reach = (taps − 1)·tapStep + 1`), cut to non-negative padding. The
 * convolution then has at least `start + inputLength` outputs, and input position h is its output
 * `start + h`.
 */
export function inputGradAxis(
  length: number,
  taps: number,
  tapStep: number,
  padBefore: number,
  inputLength: number,
): { before: number; after: number; start: number; outputs: number } {
  const reach = (taps - 1) * tapStep + 1;
  const wanted = reach - 1 - padBefore;
  const before = Math.max(0, wanted);
  const start = before - wanted;
  const after = Math.max(0, start + inputLength + reach - 1 - length - before);
  return { before, after, start, outputs: length + before + after - reach + 1 };
}
