/**
 * The weight formats tfjs dequantizes on load, written bit for bit as tfjs reads them.
 *
 * A weight spec of a `model.json` may carry `quantization: {dtype: 'uint8' | 'uint16', min, scale}`
 * or `{dtype: 'float16'}` (tfjs-core `io/types.ts`, `WeightsManifestEntry.quantization`);
 * `tf.loadLayersModel` turns each stored value q back into `q·scale + min` (uint8/uint16) or into
 * the float32 of the half (float16), in tfjs-core `io/io_utils.ts` `decodeWeight`. The encoder here
 * follows tensorflowjs_converter's `quantization.py` (`quantize_weights`,
 * `_get_affine_quantization_range`): one affine range per tensor, min and max of the tensor, the
 * range nudged so that 0 is exactly representable when it lies inside (TF-Lite's
 * `NudgeQuantizationRange`: zero-padding and ReLU zeros stay exact), values rounded half to even
 * (numpy's `np.round`).
 */

/** A storage format of a float32 weight: as is, or one of the formats tfjs dequantizes on load. */
export type WeightDtype = 'float32' | 'float16' | 'uint16' | 'uint8';

/** The quantized storage formats (what `saveForInference`'s `quantize` option takes). */
export type QuantizeDtype = Exclude<WeightDtype, 'float32'>;

/** The formats of {@link QuantizeDtype}, in the order of their size. */
export const QUANTIZE_DTYPES: readonly QuantizeDtype[] = ['float16', 'uint16', 'uint8'];

/** Bytes per value of each storage format. */
export const BYTES_PER_VALUE: Readonly<Record<WeightDtype, number>> = {
  float32: 4,
  float16: 2,
  uint16: 2,
  uint8: 1,
};

/** The largest finite float16 (2^15·(2 − 2^−10)): larger magnitudes have no half. */
export const FLOAT16_MAX = 65504;

/** A float32 weight in one storage format: its bytes, its manifest metadata, what tfjs will read. */
export interface EncodedWeight {
  dtype: WeightDtype;
  /** The bytes to write, little-endian as tfjs reads them. */
  bytes: Uint8Array;
  /** The spec's `quantization` entry (absent for float32). */
  quantization?: { dtype: QuantizeDtype; min?: number; scale?: number };
  /** The float32 values tfjs's `decodeWeight` makes of `bytes`. */
  decoded: Float32Array;
}

/** Rounds half to even, as numpy's `np.round` (the converter's rounding). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The converter's affine range for per-tensor uint8/uint16 (quantization.py
 * `_get_affine_quantization_range`): scale = (max − min)/q_max; when min ≤ 0 ≤ max the minimum is
 * nudged to −round(−min/scale)·scale, so that q = round(−min/scale) decodes to exactly 0.
 */
export function affineRange(
  min: number,
  max: number,
  dtype: 'uint8' | 'uint16',
): { min: number; max: number; scale: number } {
  const qMax = dtype === 'uint8' ? 255 : 65535;
  const scale = (max - min) / qMax;
  if (min <= 0 && 0 <= max) {
    const nudgedMin = -roundHalfEven(-min / scale) * scale;
    return { min: nudgedMin, max: qMax * scale + nudgedMin, scale };
  }
  return { min, max, scale };
}

/**
 * Per-tensor affine quantization of `values` to uint8 or uint16, as `quantize_weights`: a constant
 * tensor stores zeros with scale 1 and min the constant; otherwise q = round((clip(x) − min)/scale)
 * over the nudged range. `decoded` is what tfjs computes on load: fround(q·scale + min).
 */
export function quantizeAffine(values: Float32Array, dtype: 'uint8' | 'uint16'): EncodedWeight {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const q = dtype === 'uint8' ? new Uint8Array(values.length) : new Uint16Array(values.length);
  const decoded = new Float32Array(values.length);
  let min: number;
  let scale: number;
  if (values.length === 0 || lo === hi) {
    min = values.length === 0 ? 0 : lo;
    scale = 1;
  } else {
    const range = affineRange(lo, hi, dtype);
    ({ min, scale } = range);
    for (let i = 0; i < values.length; i++) {
      const x = Math.min(Math.max(values[i], range.min), range.max);
      q[i] = roundHalfEven((x - min) / scale);
    }
  }
  for (let i = 0; i < values.length; i++) decoded[i] = q[i] * scale + min;
  return {
    dtype,
    bytes: new Uint8Array(q.buffer, q.byteOffset, q.byteLength),
    quantization: { dtype, min, scale },
    decoded,
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The IEEE half nearest to a float32 (ties to even, as numpy's `astype(np.float16)`), as its 16
 * bits. Subnormal halves are kept; magnitudes above {@link FLOAT16_MAX} round to infinity.
 */
export function float16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  let shift: number;
  let m: number;
  let base: number;
  if (e <= 0) {
    // Subnormal half: value = m·2^−24, m = (1.mantissa)·2^(exponent − 127 + 24).
    shift = 14 - e;
    if (shift > 24) return sign;
    m = mantissa | 0x800000;
    base = 0;
  } else {
    shift = 13;
    m = mantissa;
    base = e << 10;
  }
  let half = base + (m >>> shift);
  const rest = m & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  // A carry out of the mantissa moves into the exponent, as rounding should.
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** The float value of a half's 16 bits (what tfjs's float16 decoder returns). */
export function float16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** `values` as float16 (tfjs's `{dtype: 'float16'}` quantization). */
export function quantizeFloat16(values: Float32Array): EncodedWeight {
  const h = new Uint16Array(values.length);
  const decoded = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    h[i] = float16Bits(values[i]);
    decoded[i] = float16Value(h[i]);
  }
  return {
    dtype: 'float16',
    bytes: new Uint8Array(h.buffer, h.byteOffset, h.byteLength),
    quantization: { dtype: 'float16' },
    decoded,
  };
}

/** `values` in storage format `dtype` (float32: the values themselves). */
export function encodeWeight(values: Float32Array, dtype: WeightDtype): EncodedWeight {
  if (dtype === 'float16') return quantizeFloat16(values);
  if (dtype === 'uint8' || dtype === 'uint16') return quantizeAffine(values, dtype);
  const copy = Float32Array.from(values);
  return { dtype, bytes: new Uint8Array(copy.buffer), decoded: copy };
}

/** How far a decoded weight is from the original: ‖ŵ − w‖₂/‖w‖₂ (0 for w = 0) and max |ŵ − w|. */
export function weightError(
  original: Float32Array,
  decoded: Float32Array,
): { relative: number; maxAbs: number } {
  let diff = 0;
  let norm = 0;
  let maxAbs = 0;
  for (let i = 0; i < original.length; i++) {
    const d = decoded[i] - original[i];
    diff += d * d;
    norm += original[i] * original[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
  }
  return { relative: norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm), maxAbs };
}
