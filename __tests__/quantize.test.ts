/**
 * The weight formats of saveForInference against tfjs's own decoder (tfjs-core io_utils
 * `decodeWeight`) and against values worked out by hand from tensorflowjs_converter's
 * quantization.py (`quantize_weights`, `_get_affine_quantization_range`).
 */
import * as tf from '@tensorflow/tfjs';
import {
  affineRange,
  float16Bits,
  float16Value,
  quantizeAffine,
  quantizeFloat16,
  roundHalfEven,
  weightError,
} from '../src/model/quantize';

/** What tfjs decodes from `bytes` under `quantization` (the path tf.loadLayersModel takes). */
async function tfjsDecode(
  bytes: Uint8Array,
  shape: number[],
  quantization: tf.io.WeightsManifestEntry['quantization'],
): Promise<Float32Array> {
  const copy = bytes.slice().buffer;
  const { w } = tf.io.decodeWeights(copy, [{ name: 'w', shape, dtype: 'float32', quantization }]);
  const values = (await w.data()) as Float32Array;
  w.dispose();
  return values;
}

describe('per-tensor affine uint8/uint16 (tensorflowjs_converter quantization.py)', () => {
  it('rounds half to even, as np.round', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 127.5, 2.4, 2.6].map(roundHalfEven)).toEqual([
      0, 2, 2, -0, -2, 128, 2, 3,
    ]);
  });

  it('nudges the range so that 0 is a level: [-0.3, 0.7] at uint8', () => {
    // scale = 1/255; zero point = round(0.3·255) = round(76.5) = 76 (half to even);
    // nudged min = −76/255, nudged max = 255/255 − 76/255 = 179/255.
    const r = affineRange(-0.3, 0.7, 'uint8');
    expect(r.scale).toBeCloseTo(1 / 255, 15);
    expect(r.min).toBeCloseTo(-76 / 255, 15);
    expect(r.max).toBeCloseTo(179 / 255, 15);
    // A range without 0 is not nudged.
    expect(affineRange(0.5, 1.5, 'uint16')).toEqual({ min: 0.5, max: 1.5, scale: 1 / 65535 });
  });

  it('stores q = round((clip(w) − min)/scale): hand values for [-1, 0, 0.5, 2]', async () => {
    // min −1, max 2, scale 3/255; zero point 85 exactly, so min stays −1.
    // 0.5 → 1.5/(3/255) = 127.5 → 128 (half to even); 2 → 255.
    const w = Float32Array.from([-1, 0, 0.5, 2]);
    const e = quantizeAffine(w, 'uint8');
    expect(Array.from(e.bytes)).toEqual([0, 85, 128, 255]);
    expect(e.quantization!.min).toBeCloseTo(-1, 14);
    expect(e.quantization!.scale).toBeCloseTo(3 / 255, 14);
    expect(e.decoded[1]).toBe(0); // zero stays exact
    expect(Array.from(await tfjsDecode(e.bytes, [4], e.quantization))).toEqual(
      Array.from(e.decoded),
    );
  });

  it('decodes exactly as tfjs does, uint8 and uint16, with error within scale/2', async () => {
    const w = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i * 1.7) * (i % 7) * 0.3);
    for (const dtype of ['uint8', 'uint16'] as const) {
      const e = quantizeAffine(w, dtype);
      expect(e.bytes.byteLength).toBe(300 * (dtype === 'uint8' ? 1 : 2));
      const tfjs = await tfjsDecode(e.bytes, [300], e.quantization);
      expect(Array.from(tfjs)).toEqual(Array.from(e.decoded));
      const err = weightError(w, e.decoded);
      expect(err.maxAbs).toBeLessThanOrEqual(e.quantization!.scale! / 2 + 1e-7);
      expect(err.relative).toBeGreaterThan(0);
    }
  });

  it('stores a constant tensor as zeros with scale 1 and min the constant', () => {
    const e = quantizeAffine(Float32Array.from([0.25, 0.25, 0.25]), 'uint8');
    expect(Array.from(e.bytes)).toEqual([0, 0, 0]);
    expect(e.quantization).toEqual({ dtype: 'uint8', min: 0.25, scale: 1 });
    expect(Array.from(e.decoded)).toEqual([0.25, 0.25, 0.25]);
  });
});

describe('float16 (IEEE half, ties to even)', () => {
  it('encodes hand-checked values', () => {
    expect(float16Bits(1)).toBe(0x3c00);
    expect(float16Bits(-2)).toBe(0xc000);
    expect(float16Bits(0.1)).toBe(0x2e66); // 0.0999755859375
    expect(float16Bits(65504)).toBe(0x7bff); // the largest half
    expect(float16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(float16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float16Bits(2 ** -26)).toBe(0x0000); // below half of it: zero
    expect(float16Bits(1 + 2 ** -11)).toBe(0x3c00); // a tie: to even (down)
    expect(float16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // a tie: to even (up)
    expect(float16Value(0x2e66)).toBe(0.0999755859375);
  });

  it('decodes exactly as tfjs does, relative error ≤ 2^-11', async () => {
    const w = Float32Array.from({ length: 500 }, (_, i) => (i - 250) * 0.0137 * 1.01 ** i);
    const e = quantizeFloat16(w);
    expect(e.quantization).toEqual({ dtype: 'float16' });
    const tfjs = await tfjsDecode(e.bytes, [500], e.quantization);
    expect(Array.from(tfjs)).toEqual(Array.from(e.decoded));
    w.forEach((v, i) =>
      expect(Math.abs(e.decoded[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 1e-12),
    );
  });
});
