/**
 * Types no looser than the runtime (issue 20, package point 3, the model tools' part): this file is
 * compiled by `npm run typecheck` (`tsc --noEmit -p .`), where every `@ts-expect-error` line must
 * be a type error (an unused one is itself an error), and run by jest, which checks that what the
 * types say is what the calls return.
 */
import * as tf from '@tensorflow/tfjs';
import { DropRateScheduler, McPrediction, layers, mcPredict, mcPredictAsync } from 'tfjs-dropnorm';

/** Never called: its body only has to type-check (or fail to, where marked). */
export function typeChecks(seq: tf.Sequential, functional: tf.LayersModel, x: tf.Tensor): void {
  // A Sequential has one output: one tensor per field.
  const one: McPrediction<tf.Tensor> = mcPredict(seq, x);
  one.mean.dataSync();
  void mcPredictAsync(seq, x).then((r) => r.variance.dataSync());

  // Any other LayersModel may have several outputs: one or many, until the caller says which.
  const unknown = mcPredict(functional, x);
  // @ts-expect-error: mean may be an array (a multi-output model)
  unknown.mean.dataSync();
  // Annotating the result names the case too (TypeScript infers T from it).
  const annotated: McPrediction<tf.Tensor[]> = mcPredict(functional, x);
  annotated.mean.forEach((t) => t.dataSync());
  const result = mcPredict(functional, x);
  // @ts-expect-error: a one-or-many result is not a one-output result
  const narrowed: McPrediction<tf.Tensor> = result;
  void narrowed;
  // @ts-expect-error: the async form is typed the same
  void mcPredictAsync(functional, x).then((r) => r.mean.dataSync());
  const many = mcPredict<tf.Tensor[]>(functional, x);
  many.mean.map((t) => t.shape);
  const single = mcPredict<tf.Tensor>(functional, x);
  single.mean.dataSync();
  // @ts-expect-error: a field is a tensor or a list of tensors
  mcPredict<string>(functional, x);

  // DropRateScheduler: a ramp (steps, optionally start) or a function, never both.
  new DropRateScheduler({ steps: 3, start: 0.1, unit: 'batch', layers: ['drop'] });
  new DropRateScheduler({ schedule: (step, target) => target * Math.min(1, step / 5) });
  // @ts-expect-error: steps and schedule together
  new DropRateScheduler({ steps: 3, schedule: () => 0.1 });
  // @ts-expect-error: start is the ramp's, meaningless with schedule
  new DropRateScheduler({ schedule: () => 0.1, start: 0 });
  // @ts-expect-error: neither steps nor schedule
  new DropRateScheduler({ unit: 'epoch' });
  // @ts-expect-error: unit is 'epoch' or 'batch'
  new DropRateScheduler({ steps: 3, unit: 'step' });
  // @ts-expect-error: layers are pack layers or names
  new DropRateScheduler({ steps: 3, layers: [tf.layers.dense({ units: 1 })] });
}

describe('the types say what the calls return', () => {
  const x = () => tf.ones([2, 3]);

  test('mcPredict on a Sequential: one tensor per field', () => {
    const seq = tf.sequential({
      layers: [layers.dropout({ rate: 0.5, inputShape: [3] }), tf.layers.dense({ units: 2 })],
    });
    const input = x();
    const { mean, variance } = mcPredict(seq, input, { samples: 2 });
    expect(mean).toBeInstanceOf(tf.Tensor);
    expect(variance.shape).toEqual([2, 2]);
    tf.dispose([mean, variance, input]);
    seq.dispose();
  });

  test('mcPredict on a two-output model: a list per field, in model.outputs order', async () => {
    const input = tf.input({ shape: [3] });
    const h = layers.dropout({ rate: 0.5 }).apply(input) as tf.SymbolicTensor;
    const a = tf.layers.dense({ units: 2 }).apply(h) as tf.SymbolicTensor;
    const b = tf.layers.dense({ units: 4 }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: [a, b] });
    const xs = x();
    const sync = mcPredict(model, xs, { samples: 2 });
    const async = await mcPredictAsync(model, xs, { samples: 2 });
    for (const r of [sync, async]) {
      expect(Array.isArray(r.mean)).toBe(true);
      expect((r.mean as tf.Tensor[]).map((t) => t.shape)).toEqual([
        [2, 2],
        [2, 4],
      ]);
      tf.dispose([r.mean, r.variance]);
    }
    xs.dispose();
    model.dispose();
  });
});
