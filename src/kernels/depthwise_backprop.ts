/**
 * `DepthwiseConv2dNativeBackpropFilter` and `DepthwiseConv2dNativeBackpropInput` for the wasm
 * backend, built on tfjs-backend-wasm's XNNPACK convolutions.
 *
 * For y = depthwiseConv2d(x, W) with channel multiplier M (output channel c·M + m), strides
 * (s_h, s_w), dilations (d_h, d_w) and top/left padding (p_t, p_l):
 *
 *   ∂L/∂W[r, q, c, m] = Σ_{b, i, j} x[b, i·s_h + r·d_h − p_t, j·s_w + q·d_w − p_l, c] · dy[b, i, j, c·M + m]
 *   ∂L/∂x[b, h, w, c] = Σ_{r, q, m} dy[b, i, j, c·M + m] · W[r, q, c, m]   over h = i·s_h + r·d_h − p_t, w = …
 *
 * The input gradient is the transposed convolution: dy with s − 1 zeros inserted between
 * positions, padded by (reach − 1 − p_t) and convolved depthwise with the spatially flipped filter
 * (dilation d), then summed over m. The filter gradient contracts over the batch and the output
 * positions for each channel separately, which no wasm kernel does at speed; it is computed like
 * the strided conv2d filter gradient (channels as the batch, the batch as the channels, dy as the
 * filter) on blocks of g channels, keeping the block's diagonal (a g× overcount that XNNPACK's
 * GEMM still beats exact-work alternatives with: see bench/wasm_training.ts; for the bench's 3×3
 * 16-channel layer, blocks of 2, 4 or 16 channels, and ./patches.ts's patch matrix times dy
 * elementwise, summed by `Sum` or by a product with ones, measured no faster). Same semantics as
 * tfjs-backend-cpu's kernels (tfjs-core's `depthwiseConv2dNativeBackpropFilter` / `…Input`), with
 * dilations honoured (the cpu kernels ignore them; tfjs-core never differentiates a dilated
 * depthwise convolution).
 */
import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';
import { KernelScope, scoped } from './backend';
import {
  checkOutputShape,
  checkRank4,
  ConvInfo,
  convInfo,
  cropUnread,
  filterGradInputs,
  explicitPad,
  filterGradAxes,
  filterGradConvAttrs,
  inputGradAxis,
  isEmpty,
} from './geometry';

const FILTER_OWNER = 'DepthwiseConv2dNativeBackpropFilter (tfjs-dropnorm, wasm)';
const INPUT_OWNER = 'DepthwiseConv2dNativeBackpropInput (tfjs-dropnorm, wasm)';

/**
 * Channels per block of the filter gradient: the divisor of `channels` nearest (in ratio) to
 * 8 / multiplier, so each block's GEMM has about 8 output columns. Larger blocks overcount more,
 * smaller ones pay the per-call cost more often (measured on tfjs-backend-wasm 4.22).
 */
export function channelBlock(channels: number, multiplier: number): number {
  const target = Math.max(1, 8 / multiplier);
  let best = 1;
  for (let g = 1; g <= channels; g++) {
    if (channels % g === 0 && Math.abs(Math.log(g / target)) < Math.abs(Math.log(best / target))) {
      best = g;
    }
  }
  return best;
}

/**
 * The depthwise convolution a kernel differentiates, checked against the filter's channels and
 * dy's shape.
 */
function depthwiseInfo(
  owner: string,
  xShape: number[],
  filterShape: number[],
  dyShape: number[],
  attrs: tf.NamedAttrMap,
): ConvInfo {
  const info = convInfo(xShape, filterShape, attrs, true);
  if (filterShape[2] !== info.inChannels) {
    throw invalidArgument(
      owner,
      'filter.shape[2]',
      filterShape[2],
      `to equal the input channels (${info.inChannels})`,
    );
  }
  checkOutputShape(owner, dyShape, info);
  return info;
}

function depthwiseBackpropFilter(
  scope: KernelScope,
  args: Parameters<tf.KernelFunc>[0],
): tf.TensorInfo {
  const { x, dy, filterShape } = filterGradInputs(FILTER_OWNER, args);
  const attrs = args.attrs ?? {};
  const info = depthwiseInfo(FILTER_OWNER, x.shape, filterShape, dy.shape, attrs);
  if (isEmpty(x.shape, dy.shape)) return scope.zeros(filterShape);
  const { batchSize: B, inChannels: C, filterHeight: kh, filterWidth: kw } = info;
  const M = filterShape[3];
  const { rows, cols } = filterGradAxes(info);
  if (rows.keep <= 0 || cols.keep <= 0) return scope.zeros(filterShape);

  const xT = cropUnread(
    scope,
    scope.run('Transpose', { x }, { perm: [3, 1, 2, 0] }), // [C, H, W, B]
    info,
    rows,
    cols,
  );
  const g = channelBlock(C, M);
  const blocks = C / g;
  const positions = info.outHeight * info.outWidth;
  const dy4 = scope.run('Reshape', { x: dy }, { shape: [B, positions, blocks, g * M] });
  const dyT = scope.run('Transpose', { x: dy4 }, { perm: [2, 1, 0, 3] }); // [blocks, i·j, B, g·M]
  const convAttrs = filterGradConvAttrs(info, rows, cols);
  const taps = kh * kw;
  const result = scope.allocate([kh, kw, C, M]);
  for (let block = 0; block < blocks; block++) {
    const xBlock = blocks === 1 ? xT : scope.leading(xT, block * g, g);
    const dyBlock = blocks === 1 ? dyT : scope.leading(dyT, block, 1);
    const filter = scope.run(
      'Reshape',
      { x: dyBlock },
      { shape: [info.outHeight, info.outWidth, B, g * M] },
    );
    const all = scope.run('Conv2D', { x: xBlock, filter }, convAttrs); // [g, kh, kw, g·M]
    if (all.shape[1] !== kh || all.shape[2] !== kw) {
      throw new Error(
        `${FILTER_OWNER}: internal shape error ${JSON.stringify(all.shape)} (please report)`,
      );
    }
    // Keep the block's diagonal: channel i of the block against its own dy channels i·M … i·M+M−1.
    const src = scope.heap(all);
    const dst = scope.heap(result);
    for (let i = 0; i < g; i++) {
      const channel = block * g + i;
      for (let t = 0; t < taps; t++) {
        const from = (i * taps + t) * g * M + i * M;
        dst.set(src.subarray(from, from + M), (t * C + channel) * M);
      }
    }
    for (const done of [all, filter, ...(blocks === 1 ? [] : [xBlock, dyBlock])]) scope.free(done);
  }
  return result;
}

function depthwiseBackpropInput(
  scope: KernelScope,
  { inputs, attrs = {} }: Parameters<tf.KernelFunc>[0],
): tf.TensorInfo {
  const dy = inputs.dy!;
  const filter = inputs.filter!;
  const inputShape = attrs.inputShape as number[];
  checkRank4(INPUT_OWNER, 'dy', dy.shape);
  checkRank4(INPUT_OWNER, 'filter', filter.shape);
  checkRank4(INPUT_OWNER, 'input', inputShape);
  const info = depthwiseInfo(INPUT_OWNER, inputShape, filter.shape, dy.shape, attrs);
  if (isEmpty(inputShape, dy.shape)) return scope.zeros(inputShape);
  const { batchSize: B, inChannels: C, inHeight: H, inWidth: W } = info;
  const { outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const M = filter.shape[3];
  const CM = C * M;

  // Zeros between the output positions (and s − 1 after the last, which only meet padding).
  let spread = dy;
  if (sh > 1) {
    const flat = scope.run('Reshape', { x: spread }, { shape: [B * oh, 1, ow * CM] });
    const padded = scope.run(
      'PadV2',
      { x: flat },
      {
        paddings: [
          [0, 0],
          [0, sh - 1],
          [0, 0],
        ],
        constantValue: 0,
      },
    );
    spread = scope.run('Reshape', { x: padded }, { shape: [B, oh * sh, ow, CM] });
  }
  const length = [sh > 1 ? oh * sh : oh, sw > 1 ? ow * sw : ow];
  if (sw > 1) {
    const flat = scope.run('Reshape', { x: spread }, { shape: [B * length[0] * ow, 1, CM] });
    const padded = scope.run(
      'PadV2',
      { x: flat },
      {
        paddings: [
          [0, 0],
          [0, sw - 1],
          [0, 0],
        ],
        constantValue: 0,
      },
    );
    spread = scope.run('Reshape', { x: padded }, { shape: [B, length[0], length[1], CM] });
  }
  const rows = inputGradAxis(
    length[0],
    info.filterHeight,
    info.dilationHeight,
    info.padInfo.top,
    H,
  );
  const cols = inputGradAxis(length[1], info.filterWidth, info.dilationWidth, info.padInfo.left, W);
  const flipped = scope.run('Reverse', { x: filter }, { dims: [0, 1] });
  const perChannel = scope.run(
    'Reshape',
    { x: flipped },
    { shape: [info.filterHeight, info.filterWidth, CM, 1] },
  );
  let dx = scope.run(
    'DepthwiseConv2dNative',
    { x: spread, filter: perChannel },
    {
      strides: [1, 1],
      pad: explicitPad(rows, cols),
      dataFormat: 'NHWC',
      dilations: [info.dilationHeight, info.dilationWidth],
    },
  );
  if (dx.shape[1] !== rows.outputs || dx.shape[2] !== cols.outputs) {
    throw new Error(
      `${INPUT_OWNER}: internal shape error ${JSON.stringify(dx.shape)} (please report)`,
    );
  }
  if (rows.start > 0 || cols.start > 0 || rows.outputs !== H || cols.outputs !== W) {
    dx = scope.window(
      dx,
      [B, rows.outputs, cols.outputs * CM],
      [0, rows.start, cols.start * CM],
      [B, H, W * CM],
      [B, H, W, CM],
    );
  }
  if (M === 1) return dx;
  const grouped = scope.run('Reshape', { x: dx }, { shape: [B * H * W, C, M] });
  const summed = scope.run('Sum', { x: grouped }, { axis: [2], keepDims: false });
  return scope.run('Reshape', { x: summed }, { shape: [B, H, W, C] });
}

/** The filter-gradient kernel config (registration fills in the backend name). */
export const depthwiseBackpropFilterKernel = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  kernelFunc: scoped(FILTER_OWNER, depthwiseBackpropFilter),
};

/** The input-gradient kernel config (registration fills in the backend name). */
export const depthwiseBackpropInputKernel = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  kernelFunc: scoped(INPUT_OWNER, depthwiseBackpropInput),
};
