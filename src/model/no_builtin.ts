/** The reason of the per-sample normalizations' entries in {@link NO_BUILTIN_EQUIVALENT}. */
export const PER_SAMPLE_REASON =
  'a per-sample normalization (statistics computed from each input at inference, nothing to fold) with no tfjs built-in equivalent';

/**
 * Pack layers that tfjs has no built-in equivalent for and that stay layers at inference (unlike
 * dropout, which is the identity there, and BatchNorm, whose moving statistics fold into an affine
 * map): per-sample normalizations (GroupNorm, Wu & He 2018; InstanceNorm, Ulyanov et al. 2016;
 * RMSNorm, Zhang & Sennrich 2019) compute their statistics from each input, so there is nothing to
 * fold. Keyed by serialization class name; the value says why the layer stays.
 *
 * `exportForInference` keeps such a layer and lists it in `kept` (the export then needs the pack to
 * load); `convertToBuiltins` lists it in `skipped` with this reason.
 */
export const NO_BUILTIN_EQUIVALENT = new Map<string, string>([
  // layers/group_norm.ts: GroupNorm (Keras 3's name), its TF Addons name, and InstanceNorm.
  ['GroupNormalization', PER_SAMPLE_REASON],
  ['Addons>GroupNormalization', PER_SAMPLE_REASON],
  ['Addons>InstanceNormalization', PER_SAMPLE_REASON],
  // layers/rms_norm.ts: RMSNorm (Keras 3's name).
  ['RMSNormalization', PER_SAMPLE_REASON],
]);
