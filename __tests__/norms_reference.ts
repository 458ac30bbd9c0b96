/**
 * Float64 references for the batch-independent norms (issue 22): group norm's forward and its
 * gradient, and RMS norm's, computed in JavaScript doubles straight from the formulas (Wu & He 2018
 * Eq. 1–3; Zhang & Sennrich 2019 Eq. 4), to check the float32 fused kernels against.
 */

/** x as [B, P, C, Q] around the channel axis: the sizes and an index function. */
function layout(shape: number[], axis: number) {
  const prod = (d: number[]) => d.reduce((a, b) => a * b, 1);
  const B = shape[0];
  const P = prod(shape.slice(1, axis));
  const C = shape[axis];
  const Q = prod(shape.slice(axis + 1));
  return {
    B,
    P,
    C,
    Q,
    at: (b: number, p: number, c: number, q: number) => ((b * P + p) * C + c) * Q + q,
  };
}

/** Group norm forward and backward in float64. `dy` may be omitted (forward only). */
export function groupNorm64(
  x: ArrayLike<number>,
  shape: number[],
  axis: number,
  groups: number,
  gamma: ArrayLike<number> | null,
  beta: ArrayLike<number> | null,
  epsilon: number,
  dy?: ArrayLike<number>,
): { y: Float64Array; dx: Float64Array; dGamma: Float64Array; dBeta: Float64Array } {
  const { B, P, C, Q, at } = layout(shape, axis);
  const n = x.length;
  const y = new Float64Array(n);
  const dx = new Float64Array(n);
  const dGamma = new Float64Array(C);
  const dBeta = new Float64Array(C);
  const cg = C / groups;
  const N = cg * P * Q;
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < groups; g++) {
      const idx: number[] = [];
      const chan: number[] = [];
      for (let p = 0; p < P; p++)
        for (let c = g * cg; c < (g + 1) * cg; c++)
          for (let q = 0; q < Q; q++) {
            idx.push(at(b, p, c, q));
            chan.push(c);
          }
      let mean = 0;
      for (const i of idx) mean += x[i];
      mean /= N;
      let v = 0;
      for (const i of idx) v += (x[i] - mean) ** 2;
      v /= N;
      const inv = 1 / Math.sqrt(v + epsilon);
      const xHat = idx.map((i) => (x[i] - mean) * inv);
      idx.forEach((i, j) => {
        const c = chan[j];
        y[i] = xHat[j] * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
      });
      if (!dy) continue;
      const gy = idx.map((i, j) => dy[i] * (gamma ? gamma[chan[j]] : 1));
      const gMean = gy.reduce((a, c) => a + c, 0) / N;
      const gx = gy.reduce((a, c, j) => a + c * xHat[j], 0) / N;
      idx.forEach((i, j) => {
        dx[i] = inv * (gy[j] - gMean - xHat[j] * gx);
        dGamma[chan[j]] += dy[i] * xHat[j];
        dBeta[chan[j]] += dy[i];
      });
    }
  }
  return { y, dx, dGamma, dBeta };
}

/** RMS norm forward and backward in float64 over sorted, non-negative `axes`. */
export function rmsNorm64(
  x: ArrayLike<number>,
  shape: number[],
  axes: number[],
  scale: ArrayLike<number> | null,
  epsilon: number,
  dy?: ArrayLike<number>,
): { y: Float64Array; dx: Float64Array; dScale: Float64Array } {
  const rank = shape.length;
  const strides = shape.map((_, a) => shape.slice(a + 1).reduce((p, d) => p * d, 1));
  const n = x.length;
  const coords = (i: number) => shape.map((d, a) => Math.floor(i / strides[a]) % d);
  const others = shape.map((_, a) => a).filter((a) => !axes.includes(a));
  const keyOf = (c: number[]) => others.map((a) => c[a]).join(',');
  const scaleIndex = (c: number[]) => axes.reduce((s, a) => s * shape[a] + c[a], 0);
  const rows = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const k = keyOf(coords(i));
    if (!rows.has(k)) rows.set(k, []);
    rows.get(k)!.push(i);
  }
  const y = new Float64Array(n);
  const dx = new Float64Array(n);
  const dScale = new Float64Array(axes.reduce((s, a) => s * shape[a], 1));
  void rank;
  for (const idx of rows.values()) {
    const N = idx.length;
    const ms = idx.reduce((a, i) => a + x[i] * x[i], 0) / N;
    const r = 1 / Math.sqrt(ms + epsilon);
    const s = idx.map((i) => (scale ? scale[scaleIndex(coords(i))] : 1));
    idx.forEach((i, j) => (y[i] = x[i] * r * s[j]));
    if (!dy) continue;
    const g = idx.map((i, j) => dy[i] * s[j]);
    const gx = g.reduce((a, v, j) => a + v * x[idx[j]], 0) / N;
    idx.forEach((i, j) => {
      dx[i] = r * g[j] - x[i] * r * r * r * gx;
      dScale[scaleIndex(coords(i))] += dy[i] * x[i] * r;
    });
  }
  return { y, dx, dScale };
}

/** max |a − b| / max(max |b|, tiny): the error relative to the reference's scale. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0;
  let scale = 1e-30;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}
