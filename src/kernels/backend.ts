/**
 * What the pack's wasm kernels need from `@tensorflow/tfjs-backend-wasm`: the three public methods
 * its own kernels use (no import of the package, so the main entry stays free of it), a scope that
 * runs other registered wasm kernels on `TensorInfo`s and frees every intermediate, and copies of
 * contiguous windows straight on the wasm heap (tfjs-backend-wasm's `Slice` first copies the whole
 * input out of the heap, which made it the slowest step of these kernels).
 */
import * as tf from '@tensorflow/tfjs';
import { DropnormValueError } from '../errors';

/** The members of tfjs-backend-wasm's `BackendWasm` that the kernels use. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

/**
 * Runs registered wasm kernels the way tfjs-backend-wasm's composite kernels do (kernel function
 * on `TensorInfo`s, outside the engine, so nothing is recorded on the gradient tape) and owns
 * every result until it is {@link release}d: `dispose()` frees the rest, also after an error.
 */
export class KernelScope {
  private readonly owned: tf.TensorInfo[] = [];

  constructor(
    readonly backend: WasmBackend,
    readonly owner: string,
  ) {}

  /** Runs the wasm kernel `kernelName` and owns its result. */
  run(
    kernelName: string,
    inputs: tf.NamedTensorInfoMap,
    attrs: tf.NamedAttrMap = {},
  ): tf.TensorInfo {
    const config = tf.getKernel(kernelName, 'wasm');
    if (config == null) {
      throw new DropnormValueError(
        `${this.owner}: the wasm backend has no '${kernelName}' kernel, which this kernel is ` +
          `built on. Use @tensorflow/tfjs-backend-wasm ^4.22 (or train on the 'cpu' backend).`,
      );
    }
    const out = config.kernelFunc({ inputs, backend: this.backend, attrs }) as tf.TensorInfo;
    this.owned.push(out);
    return out;
  }

  /** A new float32 tensor of `shape`, owned by the scope; its contents are undefined. */
  allocate(shape: number[]): tf.TensorInfo {
    const out = this.backend.makeOutput(shape, 'float32');
    this.owned.push(out);
    return out;
  }

  /**
   * a·b for a [1, M, K] and b [1, K, N] (XNNPACK's GEMM), without copying b. tfjs-backend-wasm
   * caches the packed right-hand side of a product under the ids of b and of the bias, and a
   * reshape keeps the id: with b, a caller's tensor, alone as the key, a product of the same data
   * in another shape before or after this one would meet the wrong packing. A zero bias of the
   * scope's own makes the key the scope's: pass the same `key` (from {@link productKey}) to
   * products with the same b to pack b once; freeing the key frees the packing.
   */
  product(a: tf.TensorInfo, b: tf.TensorInfo, key?: tf.TensorInfo): tf.TensorInfo {
    const bias = key ?? this.productKey(b);
    const out = this.run(
      '_FusedMatMul',
      { a, b, bias },
      { transposeA: false, transposeB: false, activation: 'linear' },
    );
    if (key == null) this.free(bias);
    return out;
  }

  /** A key for {@link product}s with the right-hand side `b`: a zero bias. */
  productKey(b: tf.TensorInfo): tf.TensorInfo {
    return this.zeros([b.shape[2]]);
  }

  /** A float32 tensor of zeros. */
  zeros(shape: number[]): tf.TensorInfo {
    const out = this.allocate(shape);
    this.heap(out).fill(0);
    return out;
  }

  /**
   * The float32 view of `info` on the wasm heap. Take it after the last allocation: a growing
   * heap detaches earlier views.
   */
  heap(info: tf.TensorInfo): Float32Array {
    return this.backend.typedArrayFromHeap(info) as Float32Array;
  }

  /**
   * The whole wasm heap as one float32 array (from any tensor on it): copies between tensors with
   * `copyWithin` and zeroing with `fill` then allocate no view per run, which matters when a
   * kernel moves thousands of short runs. Same caveat as {@link heap}.
   */
  wholeHeap(anyTensor: tf.TensorInfo): Float32Array {
    return new Float32Array(this.heap(anyTensor).buffer);
  }

  /** Where `info` starts in {@link wholeHeap}'s array. */
  offset(info: tf.TensorInfo): number {
    return this.heap(info).byteOffset >> 2;
  }

  /** `x[start : start + count]` along its first axis (a contiguous block): one copy. */
  leading(x: tf.TensorInfo, start: number, count: number): tf.TensorInfo {
    const inner = tf.util.sizeFromShape(x.shape.slice(1));
    const out = this.allocate([count, ...x.shape.slice(1)]);
    this.heap(out).set(this.heap(x).subarray(start * inner, (start + count) * inner));
    return out;
  }

  /**
   * The window `begin … begin + size` of `x` read as the rank-3 array `view` (same element
   * count), reshaped to `outShape`: one copy per row of the last axis.
   */
  window(
    x: tf.TensorInfo,
    view: [number, number, number],
    begin: [number, number, number],
    size: [number, number, number],
    outShape: number[],
  ): tf.TensorInfo {
    const out = this.allocate(outShape);
    const src = this.heap(x);
    const dst = this.heap(out);
    let at = 0;
    for (let i = begin[0]; i < begin[0] + size[0]; i++) {
      for (let j = begin[1]; j < begin[1] + size[1]; j++) {
        const from = (i * view[1] + j) * view[2] + begin[2];
        dst.set(src.subarray(from, from + size[2]), at);
        at += size[2];
      }
    }
    return out;
  }

  /** Hands `info` to the caller: the scope will not free it. */
  release(info: tf.TensorInfo): tf.TensorInfo {
    const at = this.owned.indexOf(info);
    if (at >= 0) this.owned.splice(at, 1);
    return info;
  }

  /** Frees `info` now (it is owned by the scope), to keep the peak memory of a loop low. */
  free(info: tf.TensorInfo): void {
    const at = this.owned.indexOf(info);
    if (at < 0) return;
    this.owned.splice(at, 1);
    this.backend.disposeData(info.dataId);
  }

  /** Frees every tensor the scope still owns. */
  dispose(): void {
    for (const info of this.owned.splice(0)) this.backend.disposeData(info.dataId);
  }
}

/**
 * Wraps a kernel body so that its intermediates are freed whatever happens, and only the returned
 * tensor survives.
 */
export function scoped(
  owner: string,
  body: (scope: KernelScope, args: Parameters<tf.KernelFunc>[0]) => tf.TensorInfo,
): tf.KernelFunc {
  return (args) => {
    const scope = new KernelScope(args.backend as WasmBackend, owner);
    try {
      return scope.release(body(scope, args));
    } finally {
      scope.dispose();
    }
  };
}
