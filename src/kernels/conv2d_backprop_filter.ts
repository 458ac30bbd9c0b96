/**
 * `Conv2DBackpropFilter` for the wasm backend, as one forward convolution (XNNPACK's, through
 * tfjs-backend-wasm's `Conv2D` kernel).
 *
 * For y = conv2d(x, W) with strides (s_h, s_w) and top/left padding (p_t, p_l), the filter gradient
 *
 *   ∂L/∂W[r, q, c, o] = Σ_{b, i, j} x[b, i·s_h + r − p_t, j·s_w + q − p_l, c] · dy[b, i, j, o]
 *
 * (x is 0 outside the input) is a correlation of x with dy in which the batch is the contracted
 * axis: with x transposed to [c, h, w, b] (channels as the batch, the batch as the channels) and dy
 * to [i, j, b, o] (a filter of the output's spatial size), it is conv2d(x', dy') with stride 1,
 * dilation (s_h, s_w) and padding (p_t, p_l) at the start, whose [c, r, q, o] output is ∂L/∂W
 * transposed. Same semantics as tfjs-backend-cpu's kernel (tfjs-core's `conv2DBackpropFilter`).
 */
import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';
import { KernelScope, scoped } from './backend';
import { checkOutputShape, checkRank4, convInfo, filterGradAxis } from './geometry';

const OWNER = 'Conv2DBackpropFilter (tfjs-dropnorm, wasm)';

function conv2dBackpropFilter(
  scope: KernelScope,
  { inputs, attrs = {} }: Parameters<tf.KernelFunc>[0],
): tf.TensorInfo {
  const x = inputs.x!;
  const dy = inputs.dy!;
  const filterShape = attrs.filterShape as number[];
  checkRank4(OWNER, 'x', x.shape);
  checkRank4(OWNER, 'dy', dy.shape);
  checkRank4(OWNER, 'filter', filterShape);
  const info = convInfo(x.shape, filterShape, { ...attrs, dilations: 1 }, false);
  if (filterShape[2] !== info.inChannels) {
    throw invalidArgument(
      OWNER,
      'filterShape[2]',
      filterShape[2],
      `to equal the input channels of x (${info.inChannels})`,
    );
  }
  checkOutputShape(OWNER, dy.shape, info);
  if (tf.util.sizeFromShape(x.shape) === 0 || tf.util.sizeFromShape(dy.shape) === 0) {
    return scope.zeros(filterShape);
  }
  const { batchSize, inChannels, filterHeight, filterWidth } = info;
  const rows = filterGradAxis(
    info.inHeight,
    info.padInfo.top,
    filterHeight,
    1,
    info.outHeight,
    info.strideHeight,
  );
  const cols = filterGradAxis(
    info.inWidth,
    info.padInfo.left,
    filterWidth,
    1,
    info.outWidth,
    info.strideWidth,
  );
  if (rows.keep <= 0 || cols.keep <= 0) return scope.zeros(filterShape);

  const channelsLast = info.dataFormat === 'channelsLast';
  let xT = scope.run('Transpose', { x }, { perm: channelsLast ? [3, 1, 2, 0] : [1, 2, 3, 0] });
  if (rows.keep < info.inHeight || cols.keep < info.inWidth) {
    // Input rows/columns past the last window were never read: crop them, as padding cannot be negative.
    xT = scope.window(
      xT,
      [inChannels, info.inHeight, info.inWidth * batchSize],
      [0, 0, 0],
      [inChannels, rows.keep, cols.keep * batchSize],
      [inChannels, rows.keep, cols.keep, batchSize],
    );
  }
  const dyT = scope.run(
    'Transpose',
    { x: dy },
    { perm: channelsLast ? [1, 2, 0, 3] : [2, 3, 0, 1] },
  );
  const grad = scope.run(
    'Conv2D',
    { x: xT, filter: dyT },
    {
      strides: [1, 1],
      pad: [
        [0, 0],
        [rows.before, rows.after],
        [cols.before, cols.after],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dilations: [info.strideHeight, info.strideWidth],
    },
  );
  if (grad.shape[1] !== filterHeight || grad.shape[2] !== filterWidth) {
    throw new Error(`${OWNER}: internal shape error ${JSON.stringify(grad.shape)} (please report)`);
  }
  return scope.run('Transpose', { x: grad }, { perm: [1, 2, 0, 3] });
}

/** The kernel config (without the backend name, which registration fills in). */
export const conv2dBackpropFilterKernel = {
  kernelName: 'Conv2DBackpropFilter',
  kernelFunc: scoped(OWNER, conv2dBackpropFilter),
};
