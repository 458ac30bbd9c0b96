/**
 * The patch matrix of a stride-1 convolution, built on the wasm heap with block copies: the input
 * side of a filter gradient computed as one matrix product (tfjs-backend-wasm's `BatchMatMul`,
 * XNNPACK's GEMM).
 *
 * For the input x in channel-major planes xᵀ[c, b, h, w] and taps (r, q) at offsets
 * (Δr, Δq) = (r·d_h − p_t, q·d_w − p_l), the matrix has a row per (r, q, c) and a column per
 * (b, i, j), i < outHeight, j < width (the input's width, not the output's: a row of the matrix is
 * then a shifted copy of whole input rows, so one copy per plane, or per tap when the output is as
 * tall as the input), and holds
 *
 *   P[(r, q, c), (b, i, j)] = x[b, i + Δr, j + Δq, c]   (0 where that is outside x).
 *
 * With dy laid out on the same columns (zero where j ≥ outWidth), ∂L/∂W[r, q, c, o] = (P·dy)[(r, q,
 * c), o]. The zeros are written explicitly, so a row never pairs dy with a value from a
 * neighbouring row or plane.
 */
import * as tf from '@tensorflow/tfjs';
import { KernelScope } from './backend';

/** What {@link patchRows} needs to know about the convolution. */
export interface PatchGeometry {
  /** Channels of x (rows per tap). */
  channels: number;
  batch: number;
  height: number;
  width: number;
  /** Rows i of the output whose patches are taken (the columns are the input's width). */
  outHeight: number;
  /** Δr per filter row r. */
  rowOffsets: number[];
  /** Δq per filter column q. */
  colOffsets: number[];
}

/**
 * P (see the module comment) as a [1, taps·channels, batch·outHeight·width] tensor owned by
 * `scope`, from `xT`, x as [channels, batch, height, width].
 */
export function patchRows(scope: KernelScope, xT: tf.TensorInfo, g: PatchGeometry): tf.TensorInfo {
  const { channels, batch, height: H, width: W, outHeight: OH, rowOffsets, colOffsets } = g;
  const planes = channels * batch;
  const planeIn = H * W;
  const planeOut = OH * W;
  const taps = rowOffsets.length * colOffsets.length;
  const out = scope.allocate([1, taps * channels, batch * planeOut]);
  const heap = scope.wholeHeap(out);
  const src = scope.offset(xT);
  const srcEnd = src + planes * planeIn;
  const dst = scope.offset(out);

  rowOffsets.forEach((dr, r) => {
    // Output rows i with 0 ≤ i + Δr < H read x; the others are padding.
    const i0 = Math.min(OH, Math.max(0, -dr));
    const i1 = Math.max(i0, Math.min(OH, H - dr));
    colOffsets.forEach((dq, q) => {
      const base = dst + (r * colOffsets.length + q) * planes * planeOut;
      if (i1 === i0 || Math.abs(dq) >= W) {
        heap.fill(0, base, base + planes * planeOut);
        return;
      }
      if (OH === H) {
        // Planes are as large in P as in x: one shifted copy for the whole tap, then the rows that
        // came from a neighbouring plane are zeroed below.
        const shift = dr * W + dq;
        const total = planes * planeIn;
        const lo = Math.max(0, -shift);
        const hi = Math.min(total, total - shift);
        heap.copyWithin(base + lo, src + lo + shift, src + hi + shift);
        zero(heap, base, base + lo);
        zero(heap, base + hi, base + total);
        for (let p = 0; p < planes; p++) {
          const plane = base + p * planeOut;
          zero(heap, plane, plane + i0 * W);
          zero(heap, plane + i1 * W, plane + planeOut);
        }
      } else {
        for (let p = 0; p < planes; p++) {
          const plane = base + p * planeOut;
          zero(heap, plane, plane + i0 * W);
          zero(heap, plane + i1 * W, plane + planeOut);
          // Clamped to x: what falls outside is in the columns zeroed below.
          const from = src + p * planeIn + (i0 + dr) * W + dq;
          const start = Math.max(from, src);
          const end = Math.min(from + (i1 - i0) * W, srcEnd);
          heap.copyWithin(plane + i0 * W + (start - from), start, end);
        }
      }
      if (dq === 0) return;
      // Columns j with j + Δq outside [0, W) read the next or previous row: zero them (in every
      // row: the padding rows are zero already).
      const first = base + (dq > 0 ? W - dq : 0);
      const end = base + planes * planeOut;
      const count = Math.abs(dq);
      for (let row = first; row < end; row += W) {
        for (let k = 0; k < count; k++) heap[row + k] = 0;
      }
    });
  });
  return out;
}

/** Zeroes heap[from, to): a loop for short runs, where `fill`'s call costs more than the stores. */
function zero(heap: Float32Array, from: number, to: number): void {
  if (to - from > 64) heap.fill(0, from, to);
  else for (let k = from; k < to; k++) heap[k] = 0;
}

/**
 * dy (NHWC, [batch, outHeight, outWidth, channels]) on the columns of {@link patchRows}: as
 * [1, batch·outHeight·width, channels], zero where j ≥ outWidth (dy itself, reshaped, when
 * outWidth = width).
 */
export function gradientColumns(
  scope: KernelScope,
  dy: tf.TensorInfo,
  width: number,
): tf.TensorInfo {
  const [batch, outHeight, outWidth, channels] = dy.shape;
  const shape = [1, batch * outHeight * width, channels];
  if (outWidth === width) return scope.run('Reshape', { x: dy }, { shape });
  const out = scope.allocate(shape);
  const heap = scope.wholeHeap(out);
  const src = scope.offset(dy);
  const dst = scope.offset(out);
  const rowIn = outWidth * channels;
  const rowOut = width * channels;
  for (let row = 0; row < batch * outHeight; row++) {
    heap.copyWithin(dst + row * rowOut, src + row * rowIn, src + (row + 1) * rowIn);
    heap.fill(0, dst + row * rowOut + rowIn, dst + (row + 1) * rowOut);
  }
  return out;
}
