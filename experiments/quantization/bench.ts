/**
 * `npm run bench:quantization`: the time of `saveForInference` on nsfwjs's pretrained MobileNetV2
 * (224×224; goal ≤ 10 s on wasm) for each mode, and the predict latency (batch 1) of the loaded
 * uint8 model against the float export: tfjs dequantizes at load, so the two should run alike.
 * Timings are medians; the predict comparison interleaves the two models (others may share the
 * machine: the ratio is what to read).
 *
 *   npm run bench:quantization -- [--backend wasm|cpu] [--runs 15] [--calibration 8]
 */
import * as tf from '@tensorflow/tfjs';
import { SaveForInferenceOptions, exportForInference, saveForInference } from 'tfjs-dropnorm';
import { useBackend } from '../lib/backend';
import { parseArgs } from '../lib/cli';
import { interleaved, summarize } from '../lib/timing';
import { capture, loadNsfwMobileNetV2 } from './models';

const DEFAULTS = { backend: 'wasm', runs: 15, calibration: 8, repeats: 3 };

async function main(): Promise<void> {
  const args = parseArgs(DEFAULTS, process.argv.slice(2), {
    usage: 'npm run bench:quantization -- [--backend wasm|cpu] [--runs 15]',
  });
  const backend = await useBackend(args.backend);
  const model = await loadNsfwMobileNetV2();
  const calibration = tf.randomUniform([args.calibration, 224, 224, 3], 0, 1, 'float32', 1);
  const modes: Array<[string, SaveForInferenceOptions]> = [
    ['float32', {}],
    ['float16', { quantize: 'float16' }],
    ['uint8 (no calibration)', { quantize: 'uint8' }],
    [`uint8 + ${args.calibration} calibration images`, { quantize: 'uint8', calibration }],
  ];
  const lines: string[] = [`backend ${backend}`];
  let uint8: tf.io.ModelArtifacts | null = null;
  for (const [name, options] of modes) {
    const times: number[] = [];
    for (let r = 0; r < args.repeats; r++) {
      const m = capture();
      const t0 = performance.now();
      await saveForInference(model, m.handler, options);
      times.push(performance.now() - t0);
      if (options.calibration) uint8 = m.get();
    }
    const s = summarize(times);
    lines.push(
      `saveForInference ${name}: median ${(s.median / 1000).toFixed(2)} s (${args.repeats} runs)`,
    );
    process.stderr.write(`${lines[lines.length - 1]}\n`);
  }
  const exported = exportForInference(model).model;
  const quantized = await tf.loadLayersModel(tf.io.fromMemory(uint8!));
  const x = tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', 2);
  const run = (m: tf.LayersModel) => async () => {
    const y = m.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
  const ab = await interleaved(run(quantized), run(exported), { runs: args.runs, warmup: 3 });
  lines.push(
    `predict batch 1: uint8 (loaded) ${ab.a.median.toFixed(1)} ms, float export ${ab.b.median.toFixed(1)} ms, ` +
      `paired ratio ${ab.pairedRatio.toFixed(3)} (${args.runs} interleaved runs)`,
  );
  console.log(lines.join('\n'));
  tf.dispose([x, calibration]);
  quantized.dispose();
  exported.dispose();
  model.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
