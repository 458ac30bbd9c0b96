/**
 * `Conv2DBackpropFilter` for the wasm backend, on XNNPACK's GEMM and convolution (through
 * tfjs-backend-wasm's `BatchMatMul` and `Conv2D` kernels).
 *
 * For y = conv2d(x, W) with strides (s_h, s_w) and top/left padding (p_t, p_l), the filter gradient
 *
 *   ∂L/∂W[r, q, c, o] = Σ_{b, i, j} x[b, i·s_h + r − p_t, j·s_w + q − p_l, c] · dy[b, i, j, o]
 *
 * (x is 0 outside the input) contracts over the batch and the output positions. XNNPACK packs
 * the right-hand side of every product (the filter of a convolution) before it multiplies, at
 * about 3 ns a value (5 through `Conv2D`, which also reorders the filter), tens of times the cost
 * of a multiply-add in its inner loop; here that operand holds a value per output position, so
 * which operand is packed decides the kernel's speed. Three forms, the same semantics as
 * tfjs-backend-cpu's kernel (tfjs-core's `conv2DBackpropFilter`):
 *
 * - stride 1: the patch matrix of x (block copies, ./patches.ts) times dy, with dy packed, unless
 *   the patches are far larger than dy (see {@link patchesPay});
 * - a 1×1 filter, stride 1, no padding, fewer input than output channels: dyᵀ times x, x packed;
 * - otherwise (strides > 1 above all): a correlation of x with dy in which the batch is the contracted axis: with x
 *   transposed to [c, h, w, b] (channels as the batch, the batch as the channels) and dy to
 *   [i, j, b, o] (a filter of the output's spatial size), conv2d(x', dy') with stride 1, dilation
 *   (s_h, s_w) and padding (p_t, p_l) at the start, whose [c, r, q, o] output is ∂L/∂W transposed.
 *   No zero enters that product, where the patch matrix of a strided convolution would need an
 *   element-wise gather.
 */
import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';
import { KernelScope, scoped } from './backend';
import {
  checkOutputShape,
  ConvInfo,
  convInfo,
  cropUnread,
  filterGradInputs,
  isEmpty,
  filterGradAxes,
  filterGradConvAttrs,
} from './geometry';
import { gradientColumns, patchRows } from './patches';

const OWNER = 'Conv2DBackpropFilter (tfjs-dropnorm, wasm)';

function conv2dBackpropFilter(
  scope: KernelScope,
  args: Parameters<tf.KernelFunc>[0],
): tf.TensorInfo {
  const { x, dy, filterShape } = filterGradInputs(OWNER, args);
  const attrs = args.attrs ?? {};
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
  if (isEmpty(x.shape, dy.shape)) return scope.zeros(filterShape);
  if (info.strideHeight === 1 && info.strideWidth === 1) {
    if (isPointwise(info) && info.inChannels < info.outChannels) {
      return pointwiseProduct(scope, x, dy, info);
    }
    if (patchesPay(info)) return patchProduct(scope, x, dy, info);
  }
  return dilatedConvolution(scope, x, dy, info);
}

/**
 * Whether {@link patchProduct} beats {@link dilatedConvolution} at stride 1. Both pack dy; the
 * convolution reads x's patches through XNNPACK's indirection but packs dy through `Conv2D`
 * (reorder, then pack: about 3 ns a value more than `BatchMatMul`'s), where the patch product
 * copies kh·kw values of x per input value (about 0.5 ns each). Measured on tfjs-backend-wasm
 * 4.22: the patches pay off up to kh·kw·C ≈ 6·O (the bench CNN's 3×3 16→32 layer is at 4.5, a
 * 5×5 8→8 layer at 25 is 1.5× slower as patches).
 */
function patchesPay(info: ConvInfo): boolean {
  const { filterHeight, filterWidth, inChannels, outChannels } = info;
  return (
    info.outWidth <= info.inWidth && filterHeight * filterWidth * inChannels <= 6 * outChannels
  );
}

/** A 1×1 filter, stride 1, no padding: x itself is the patch matrix. */
function isPointwise(info: ConvInfo): boolean {
  const { top, bottom, left, right } = info.padInfo;
  return info.filterHeight === 1 && info.filterWidth === 1 && top + bottom + left + right === 0;
}

/** `t` (x or dy, in the convolution's data format) as [channels, batch, height, width]. */
function channelsOutermost(scope: KernelScope, t: tf.TensorInfo, info: ConvInfo): tf.TensorInfo {
  const perm = info.dataFormat === 'channelsLast' ? [3, 0, 1, 2] : [1, 0, 2, 3];
  return scope.run('Transpose', { x: t }, { perm });
}

const toNhwc = [0, 2, 3, 1];

/** `t` (x or dy, in the convolution's data format) as NHWC: itself when it is. */
function asNhwc(scope: KernelScope, t: tf.TensorInfo, info: ConvInfo): tf.TensorInfo {
  if (info.dataFormat === 'channelsLast') return t;
  return scope.run('Transpose', { x: t }, { perm: toNhwc });
}

/**
 * Stride 1: ∂L/∂W = P·dy, a GEMM of [kh·kw·C, N] by [N, O] (N = B·H'·W, see ./patches.ts), whose
 * [(r, q, c), o] result is ∂L/∂W in HWIO order. The patches stay on the left: as the packed
 * operand they would be kh·kw·C values per position instead of O, and would have to be
 * interleaved (an element-wise transposition) where on the left they are block copies. (Measured
 * for a 3×3 1→16 first layer, where the patches are the fewer: packing them after transposing
 * them and dy was no faster.) With at least 8 rows per filter row, one product per filter row:
 * dy is packed once for all of them (see {@link KernelScope.product}), and a third of the patches
 * at a time stays in cache between its copy and its product (the bench's 3×3 16→32 layer inside a
 * train step: 0.95× of one product).
 */
function patchProduct(
  scope: KernelScope,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: ConvInfo,
): tf.TensorInfo {
  const { batchSize, inChannels, inHeight, inWidth, outHeight, filterHeight, filterWidth } = info;
  const filterShape = [filterHeight, filterWidth, inChannels, info.outChannels];
  const xT = channelsOutermost(scope, x, info);
  const dyNhwc = asNhwc(scope, dy, info);
  const columns = gradientColumns(scope, dyNhwc, inWidth);
  const rowOffsets = Array.from({ length: filterHeight }, (_, r) => r - info.padInfo.top);
  const geometry = {
    channels: inChannels,
    batch: batchSize,
    height: inHeight,
    width: inWidth,
    outHeight,
    colOffsets: Array.from({ length: filterWidth }, (_, q) => q - info.padInfo.left),
  };
  if (filterHeight === 1 || filterWidth * inChannels < 8) {
    const grad = scope.product(patchRows(scope, xT, { ...geometry, rowOffsets }), columns);
    return scope.run('Reshape', { x: grad }, { shape: filterShape });
  }
  const key = scope.productKey(columns);
  const out = scope.allocate(filterShape);
  rowOffsets.forEach((dr, r) => {
    const patches = patchRows(scope, xT, { ...geometry, rowOffsets: [dr] });
    const grad = scope.product(patches, columns, key);
    scope.heap(out).set(scope.heap(grad), r * tf.util.sizeFromShape(grad.shape));
    scope.free(patches);
    scope.free(grad);
  });
  return out;
}

/**
 * A 1×1 filter, stride 1, no padding, C < O: (dyᵀ·x)ᵀ. x is its own patch matrix, so putting it on
 * the packed side costs no interleaving, and packs C values per position instead of O; dy is
 * transposed instead, a pass about three times cheaper per value than packing.
 */
function pointwiseProduct(
  scope: KernelScope,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: ConvInfo,
): tf.TensorInfo {
  const { inChannels, outChannels } = info;
  const n = tf.util.sizeFromShape(x.shape) / inChannels;
  const dyT = channelsOutermost(scope, dy, info);
  const xRows = asNhwc(scope, x, info);
  const grad = scope.product(
    scope.run('Reshape', { x: dyT }, { shape: [1, outChannels, n] }),
    scope.run('Reshape', { x: xRows }, { shape: [1, n, inChannels] }),
  );
  const gradT = scope.run(
    'Transpose',
    { x: scope.run('Reshape', { x: grad }, { shape: [outChannels, inChannels] }) },
    { perm: [1, 0] },
  );
  return scope.run('Reshape', { x: gradT }, { shape: [1, 1, inChannels, outChannels] });
}

/**
 * Strides > 1: one forward convolution of x (batch and channels swapped) with dy as the filter,
 * dilated by the stride (see the module comment); no zeros enter the product.
 */
function dilatedConvolution(
  scope: KernelScope,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: ConvInfo,
): tf.TensorInfo {
  const { inChannels, filterHeight, filterWidth } = info;
  const filterShape = [filterHeight, filterWidth, inChannels, info.outChannels];
  // info has dilation 1 (the forward convolution's filter is not dilated).
  const { rows, cols } = filterGradAxes(info);
  if (rows.keep <= 0 || cols.keep <= 0) return scope.zeros(filterShape);

  const channelsLast = info.dataFormat === 'channelsLast';
  const xT = cropUnread(
    scope,
    scope.run('Transpose', { x }, { perm: channelsLast ? [3, 1, 2, 0] : [1, 2, 3, 0] }),
    info,
    rows,
    cols,
  );
  const dyT = scope.run(
    'Transpose',
    { x: dy },
    { perm: channelsLast ? [1, 2, 0, 3] : [2, 3, 0, 1] },
  );
  const grad = scope.run('Conv2D', { x: xT, filter: dyT }, filterGradConvAttrs(info, rows, cols));
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
