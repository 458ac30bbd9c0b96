// Drop-rate schedules: a settable rate, DropRateScheduler in model.fit, dropPathRates.
import * as tf from '@tensorflow/tfjs';
import {
  DropRateScheduler,
  DropRateSchedulerOptions,
  Dropout,
  dropPathRates,
  layers,
} from 'tfjs-dropnorm';
import { leakedTensors } from './helpers';

const UNITS = 1000;

/**
 * A model whose loss is the kept fraction of a classic-mode Dropout: ones → Dropout (classic:
 * kept units stay 1, dropped ones 0) → Dense with every weight 1/UNITS (frozen by a zero learning
 * rate), loss MAE against 0 = mean kept fraction = 1 − measured drop rate.
 */
function probe(rate: number, extra: Partial<{ name: string }> = {}) {
  const drop = layers.dropout({ rate, mode: 'classic', seed: 1, ...extra });
  const model = tf.sequential({
    layers: [
      tf.layers.inputLayer({ inputShape: [UNITS] }),
      drop,
      tf.layers.dense({
        units: 1,
        useBias: false,
        kernelInitializer: tf.initializers.constant({ value: 1 / UNITS }),
      }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0), loss: 'meanAbsoluteError' });
  return { model, drop };
}

const rows = 64;
const xs = tf.ones([rows, UNITS]);
const ys = tf.zeros([rows, 1]);
afterAll(() => tf.dispose([xs, ys]));

/** 5 standard errors of a drop fraction measured over n Bernoulli units. */
const tolerance = (p: number, n: number) => 5 * Math.sqrt(Math.max(p * (1 - p), 0.01) / n);

describe('a settable rate', () => {
  test('changes what the next call drops, validated like the constructor, saved by getConfig', () => {
    const drop = layers.dropout({ rate: 0.1, seed: 2, name: 'settable' });
    const ones = tf.ones([4, 5000]);
    const dropped = (r: number) => {
      drop.rate = r;
      const y = drop.apply(ones, { training: true }) as tf.Tensor;
      const f = tf.tidy(() => tf.mean(tf.cast(tf.equal(y, 0), 'float32')).dataSync()[0]);
      y.dispose();
      return f;
    };
    for (const r of [0.1, 0.6, 0, 0.3])
      expect(Math.abs(dropped(r) - r)).toBeLessThan(tolerance(r, 20000));
    expect(drop.getConfig().rate).toBe(0.3);
    expect(() => (drop.rate = 1)).toThrow(
      /Dropout 'settable': expected rate to be a number in \[0, 1\).*received: rate=1/,
    );
    expect(() => (drop.rate = NaN)).toThrow(/received: rate=NaN/);
    expect(drop.rate).toBe(0.3); // a rejected value changes nothing
    ones.dispose();
  });

  test('every pack dropout layer takes a new rate', () => {
    const made = [
      layers.dropout({ rate: 0.1 }),
      layers.spatialDropout2d({ rate: 0.1 }),
      layers.gaussianDropout({ rate: 0.1 }),
      layers.alphaDropout({ rate: 0.1 }),
      layers.dropConnectDense({ units: 2, rate: 0.1 }),
      layers.dropBlock2d({ rate: 0.1, blockSize: 3 }),
      layers.dropPath({ rate: 0.1 }),
    ];
    for (const layer of made) {
      layer.rate = 0.25;
      expect(layer.getConfig().rate).toBe(0.25);
    }
  });
});

describe('DropRateScheduler', () => {
  test('a linear ramp over epochs: the measured drop fraction follows it epoch by epoch', async () => {
    const { model, drop } = probe(0.4);
    const history = await model.fit(xs, ys, {
      epochs: 6,
      batchSize: 16,
      verbose: 0,
      shuffle: false,
      callbacks: [new DropRateScheduler({ steps: 4 })],
    });
    const expected = [0, 0.1, 0.2, 0.3, 0.4, 0.4];
    const measured = (history.history.loss as number[]).map((kept) => 1 - kept);
    measured.forEach((m, e) =>
      expect({
        epoch: e,
        off: Math.abs(m - expected[e]) < tolerance(expected[e], rows * UNITS),
      }).toEqual({
        epoch: e,
        off: true,
      }),
    );
    expect(measured[0]).toBeLessThan(1e-6); // rate 0 drops nothing (float32 rounding of the mean)
    expect(drop.rate).toBe(0.4);
    model.dispose();
  });

  test('a ramp over batches from a start rate, and a user function', async () => {
    const { model, drop } = probe(0.5);
    const perBatch: number[] = [];
    await model.fit(xs, ys, {
      epochs: 2,
      batchSize: 16,
      verbose: 0,
      shuffle: false,
      callbacks: [
        new DropRateScheduler({ steps: 4, start: 0.1, unit: 'batch' }),
        new tf.CustomCallback({
          onBatchEnd: async (_: number, logs?: tf.Logs) => void perBatch.push(1 - logs!.loss),
        }),
      ],
    });
    const expected = [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5];
    expect(perBatch.length).toBe(8);
    perBatch.forEach((m, b) =>
      expect(Math.abs(m - expected[b])).toBeLessThan(tolerance(expected[b], 16 * UNITS)),
    );
    expect(drop.rate).toBe(0.5);

    const custom = probe(0.3);
    const history = await custom.model.fit(xs, ys, {
      epochs: 4,
      batchSize: 32,
      verbose: 0,
      callbacks: [
        new DropRateScheduler({ schedule: (epoch, target) => (epoch % 2 === 0 ? target : 0.7) }),
      ],
    });
    const measured = (history.history.loss as number[]).map((kept) => 1 - kept);
    [0.3, 0.7, 0.3, 0.7].forEach((r, e) =>
      expect(Math.abs(measured[e] - r)).toBeLessThan(tolerance(r, rows * UNITS)),
    );
    model.dispose();
    custom.model.dispose();
  });

  test('targets are kept across fits; initialEpoch continues the ramp', async () => {
    const { model, drop } = probe(0.4);
    const scheduler = new DropRateScheduler({ steps: 4 });
    await model.fit(xs, ys, { epochs: 2, batchSize: 64, verbose: 0, callbacks: [scheduler] });
    expect(drop.rate).toBeCloseTo(0.1, 10); // epoch 1 of the ramp
    await model.fit(xs, ys, {
      epochs: 4,
      initialEpoch: 2,
      batchSize: 64,
      verbose: 0,
      callbacks: [scheduler],
    });
    expect(drop.rate).toBeCloseTo(0.3, 10); // epoch 3: the target is still 0.4, not 0.1
    model.dispose();
  });

  test('changing the rate never rebuilds the layer nor leaks a tensor', async () => {
    const { model, drop } = probe(0.4);
    const fit = () =>
      model.fit(xs, ys, {
        epochs: 3,
        batchSize: 16,
        verbose: 0,
        callbacks: [new DropRateScheduler({ steps: 2, unit: 'batch' })],
      });
    await fit(); // first fit allocates the optimizer's state
    const layersBefore = model.layers.slice();
    expect(await leakedTensors(fit)).toBe(0);
    model.layers.forEach((l, i) => expect(l).toBe(layersBefore[i]));
    expect(model.layers.includes(drop)).toBe(true);
    model.dispose();
  });

  test('chooses layers by name or object, nested models included; rejects what it cannot schedule', async () => {
    const inner = tf.sequential({
      name: 'block',
      layers: [layers.dropPath({ rate: 0.2, inputShape: [4], name: 'path' })],
    });
    const input = tf.input({ shape: [4] });
    const builtin = tf.layers.dropout({ rate: 0.1, name: 'builtin' });
    const out = tf.layers
      .dense({ units: 1 })
      .apply(
        builtin.apply(layers.dropout({ rate: 0.3, name: 'top' }).apply(inner.apply(input))),
      ) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const x = tf.ones([4, 4]);
    const y = tf.zeros([4, 1]);
    const path = inner.layers[0] as Dropout;
    await model.fit(x, y, {
      epochs: 1,
      verbose: 0,
      callbacks: [new DropRateScheduler({ steps: 2, layers: ['block/path'] })],
    });
    expect(path.rate).toBe(0);
    expect((model.getLayer('top') as Dropout).rate).toBe(0.3);
    const fitWith = (options: DropRateSchedulerOptions) =>
      model.fit(x, y, { epochs: 1, verbose: 0, callbacks: [new DropRateScheduler(options)] });
    await expect(fitWith({ steps: 2, layers: ['builtin'] })).rejects.toThrow(
      /Dropout 'builtin' is not one of the pack's dropout layers; convert built-ins with convertToDropnorm/,
    );
    await expect(fitWith({ steps: 2, layers: ['nope'] })).rejects.toThrow(
      /received: layers="nope".*The pack's dropout layers in the model: 'block\/path', 'top'/,
    );
    await expect(fitWith({ schedule: () => 1.5 })).rejects.toThrow(
      /DropRateScheduler \(epoch 0, DropPath 'path'\): expected rate to be a number in \[0, 1\).*received: rate=1.5/,
    );
    const plain = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [4] })] });
    plain.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const builtinOnly = tf.sequential({
      layers: [tf.layers.dropout({ rate: 0.1, inputShape: [4] }), tf.layers.dense({ units: 1 })],
    });
    builtinOnly.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const callbacks = [new DropRateScheduler({ steps: 2 })];
    await expect(plain.fit(x, y, { epochs: 1, verbose: 0, callbacks })).rejects.toThrow(
      /no dropout layer to schedule; add one of the pack's/,
    );
    await expect(builtinOnly.fit(x, y, { epochs: 1, verbose: 0, callbacks })).rejects.toThrow(
      /convert the built-in ones with convertToDropnorm/,
    );
    tf.dispose([x, y]);
    [model, plain, builtinOnly].forEach((m) => m.dispose());
  });

  test('option errors (each combination the type refuses is refused at run time too)', () => {
    // @ts-expect-error: neither steps nor schedule
    expect(() => new DropRateScheduler({})).toThrow(
      /expected steps and schedule to be given one at a time/,
    );
    // @ts-expect-error: both steps and schedule
    expect(() => new DropRateScheduler({ steps: 2, schedule: () => 0 })).toThrow(/one at a time/);
    // @ts-expect-error: start belongs to the ramp
    expect(() => new DropRateScheduler({ schedule: () => 0.1, start: 0.1 })).toThrow(
      'DropRateScheduler: expected start to be omitted with schedule (it is the first rate of the linear ramp, steps), received: start=0.1. Return the first rate from schedule(0, target) instead.',
    );
    // @ts-expect-error: a schedule is a function
    expect(() => new DropRateScheduler({ schedule: 0.1 })).toThrow(/to be a function/);
    expect(() => new DropRateScheduler({ steps: 0 })).toThrow(
      /expected steps to be a positive integer, received: steps=0/,
    );
    expect(() => new DropRateScheduler({ steps: 2, start: 1 })).toThrow(
      /expected rate to be a number in \[0, 1\)/,
    );
    expect(() => new DropRateScheduler({ steps: 2, unit: 'step' as 'batch' })).toThrow(
      /expected unit to be 'epoch' or 'batch'/,
    );
    expect(
      () => new DropRateScheduler({ steps: 2, epochs: 3 } as DropRateSchedulerOptions),
    ).toThrow(/unknown option 'epochs'/);
  });
});

describe('DropRateScheduler: one scheduler for several models (issue 20, item 4)', () => {
  /** A small trainable model around one pack dropout layer, optionally inside timeDistributed. */
  function small(rate: number, name: string, wrapped = false) {
    const drop = layers.dropout({ rate, name });
    const model = tf.sequential({
      name: `model_${name}`,
      layers: [
        tf.layers.inputLayer({ inputShape: [3, 2] }),
        wrapped ? tf.layers.timeDistributed({ layer: drop, name: `td_${name}` }) : drop,
        tf.layers.flatten(),
        tf.layers.dense({ units: 1 }),
      ],
    });
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    return { model, drop };
  }
  /** The rate each epoch (or batch) trained with: read after the scheduler set it. */
  function recorder(drop: Dropout, rates: number[], unit: 'epoch' | 'batch' = 'epoch') {
    const read = async () => {
      rates.push(drop.rate);
    };
    return new tf.CustomCallback(
      unit === 'epoch' ? { onEpochBegin: read } : { onBatchBegin: read },
    );
  }
  const x = () => tf.ones([4, 3, 2]);
  const y = () => tf.zeros([4, 1]);

  test('a shared callbacks array (k-fold): each model ramps to its own target; the first is left as its schedule left it', async () => {
    const scheduler = new DropRateScheduler({ steps: 4 });
    const a = small(0.4, 'a');
    const b = small(0.2, 'b');
    const [xs, ys] = [x(), y()];
    const ratesA: number[] = [];
    const ratesB: number[] = [];
    await a.model.fit(xs, ys, {
      epochs: 2,
      verbose: 0,
      callbacks: [scheduler, recorder(a.drop, ratesA)],
    });
    await b.model.fit(xs, ys, {
      epochs: 2,
      verbose: 0,
      callbacks: [scheduler, recorder(b.drop, ratesB)],
    });
    // Before: the second fit scheduled model a again (b stayed at 0.2, a was set to 0, 0.1).
    expect(ratesB).toEqual([0, 0.05]);
    expect(a.drop.rate).toBeCloseTo(0.1, 12);
    // Model a continues from its own target (0.4), not from the rate it was left at.
    await a.model.fit(xs, ys, {
      epochs: 4,
      initialEpoch: 2,
      verbose: 0,
      callbacks: [scheduler, recorder(a.drop, ratesA)],
    });
    expect(ratesA.map((r) => +r.toFixed(12))).toEqual([0, 0.1, 0.2, 0.3]);
    expect(b.drop.rate).toBeCloseTo(0.05, 12);
    tf.dispose([xs, ys]);
    [a, b].forEach((m) => m.model.dispose());
  });

  test("unit 'batch' counts each model's batches from 0", async () => {
    const scheduler = new DropRateScheduler({ steps: 4, unit: 'batch' });
    const a = small(0.4, 'a');
    const b = small(0.4, 'b');
    const [xs, ys] = [x(), y()];
    const ratesA: number[] = [];
    const ratesB: number[] = [];
    const fit = (m: typeof a, rates: number[]) =>
      m.model.fit(xs, ys, {
        epochs: 1,
        batchSize: 2,
        verbose: 0,
        callbacks: [scheduler, recorder(m.drop, rates, 'batch')],
      });
    await fit(a, ratesA);
    await fit(b, ratesB);
    await fit(a, ratesA);
    expect(ratesB.map((r) => +r.toFixed(12))).toEqual([0, 0.1]);
    expect(ratesA.map((r) => +r.toFixed(12))).toEqual([0, 0.1, 0.2, 0.3]);
    tf.dispose([xs, ys]);
    [a, b].forEach((m) => m.model.dispose());
  });

  test('layers given as objects belong to one model: another model is refused at its fit, with the reason', async () => {
    const a = small(0.4, 'a');
    const b = small(0.4, 'b');
    const scheduler = new DropRateScheduler({ steps: 2, layers: [a.drop] });
    const [xs, ys] = [x(), y()];
    await expect(
      b.model.fit(xs, ys, { epochs: 1, verbose: 0, callbacks: [scheduler] }),
    ).rejects.toThrow(
      /DropRateScheduler: expected layers to be layers of the model being trained \('model_b\w*'\), received: layers="Dropout 'a'"\. Layers given as objects belong to one model/,
    );
    expect(b.drop.rate).toBe(0.4);
    tf.dispose([xs, ys]);
    [a, b].forEach((m) => m.model.dispose());
  });

  test('a dropout inside tf.layers.timeDistributed is found and ramped (issue 20, item 2), by default and by path', async () => {
    const a = small(0.4, 'a', true);
    const [xs, ys] = [x(), y()];
    for (const options of [{ steps: 4 }, { steps: 4, layers: ['td_a/a'] }]) {
      a.drop.rate = 0.4;
      const rates: number[] = [];
      await a.model.fit(xs, ys, {
        epochs: 2,
        verbose: 0,
        callbacks: [new DropRateScheduler(options), recorder(a.drop, rates)],
      });
      expect(rates).toEqual([0, 0.1]);
    }
    tf.dispose([xs, ys]);
    a.model.dispose();
  });
});

describe('dropPathRates', () => {
  test("timm's linspace(0, maxRate, depth): rate_i = maxRate · i / (depth − 1)", () => {
    const rates = dropPathRates(5, 0.2);
    expect(rates).toEqual([0, 0.05, 0.1, 0.15000000000000002, 0.2]);
    const twelve = dropPathRates(12, 0.1);
    twelve.forEach((r, i) => expect(r).toBeCloseTo((0.1 * i) / 11, 15));
    expect(twelve[11]).toBe(0.1);
    expect(dropPathRates(1, 0.3)).toEqual([0]);
    // Huang et al.'s rule p_l = l/L · (1 − p_L), l = 1 … L: one step later.
    const huang = dropPathRates(5, 0.5).slice(1);
    [1, 2, 3, 4].forEach((l, i) => expect(huang[i]).toBeCloseTo((l / 4) * 0.5, 15));
  });

  test('errors', () => {
    expect(() => dropPathRates(0, 0.1)).toThrow(
      /dropPathRates: expected depth to be a positive integer.*depth=0/,
    );
    expect(() => dropPathRates(2.5, 0.1)).toThrow(/depth=2.5/);
    expect(() => dropPathRates(4, 1)).toThrow(
      /dropPathRates: expected rate to be a number in \[0, 1\)/,
    );
  });
});
