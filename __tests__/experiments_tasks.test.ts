/**
 * The parts the pooled experiments share: their flags and checks (experiments/lib/options.ts), the
 * task loop (lib/tasks.ts), the per-seed data cache and run accounting (lib/training.ts) and the
 * probe of a layer's inputs (lib/nets.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { inferenceInputs } from '../experiments/lib/nets';
import {
  expectClassBalanced,
  expectIntegers,
  findConfig,
  parseWithQuick,
  poolFlags,
  SEED_FLAGS,
  selectConfigIds,
} from '../experiments/lib/options';
import { runExperimentTasks, seedList } from '../experiments/lib/tasks';
import { measuredRun, SeedDataCache } from '../experiments/lib/training';

describe('experiments/lib/options', () => {
  const defaults = { ...SEED_FLAGS, epochs: 6, trainSize: 1000, ...poolFlags('reports/x') };

  it('the seed flags come first and the pool flags last, in that order', () => {
    expect(Object.keys(defaults)).toEqual([
      'quick',
      'seeds',
      'firstSeed',
      'epochs',
      'trainSize',
      'configs',
      'jobs',
      'backend',
      'out',
      'worker',
    ]);
    expect(defaults.out).toBe('reports/x');
  });

  it('--quick replaces the defaults it names; a flag given explicitly still wins', () => {
    const quick = { seeds: 1, epochs: 2 };
    expect(parseWithQuick(defaults, quick, [], '')).toMatchObject({ seeds: 3, epochs: 6 });
    expect(parseWithQuick(defaults, quick, ['--quick'], '')).toMatchObject({ seeds: 1, epochs: 2 });
    expect(parseWithQuick(defaults, quick, ['--quick', '--epochs', '4'], '')).toMatchObject({
      seeds: 1,
      epochs: 4,
    });
  });

  it('checks integers against their minimum, naming the flag as it is typed', () => {
    const o = { seeds: 2, batchSize: 0.5, epochs: 1 };
    expect(() => expectIntegers('exp', o, { seeds: 1, epochs: 1 })).not.toThrow();
    expect(() => expectIntegers('exp', o, { seeds: 3 })).toThrow(
      'exp: expected --seeds an integer ≥ 3, received: 2.',
    );
    expect(() => expectIntegers('exp', o, { batchSize: 1 })).toThrow(
      'exp: expected --batch-size an integer ≥ 1, received: 0.5.',
    );
  });

  it('checks that a number of digits is a multiple of 10 and at least the minimum', () => {
    expect(() => expectClassBalanced('exp', { trainSize: 300 }, 'trainSize')).not.toThrow();
    expect(() => expectClassBalanced('exp', { trainSize: 305 }, 'trainSize')).toThrow(
      'exp: expected --train-size a multiple of 10 (class-balanced), received: 305.',
    );
    expect(() => expectClassBalanced('exp', { heldOutSize: 1000 }, 'heldOutSize', 2000)).toThrow(
      'exp: expected --held-out-size a multiple of 10 (class-balanced) and ≥ 2000, received: 1000.',
    );
  });

  it('--configs selects ids in the order of the configurations; unknown ids are listed', () => {
    const configs = [{ id: 'none' }, { id: 'bn' }, { id: 'dropout' }];
    expect(selectConfigIds('exp', configs, '')).toEqual(['none', 'bn', 'dropout']);
    expect(selectConfigIds('exp', configs, 'dropout, none')).toEqual(['none', 'dropout']);
    expect(() => selectConfigIds('exp', configs, 'bn,drpout,nope')).toThrow(
      'exp: unknown configuration(s) drpout, nope in --configs; known: none, bn, dropout',
    );
    expect(findConfig('exp', configs, 'bn')).toBe(configs[1]);
    expect(() => findConfig('exp', configs, 'x')).toThrow(
      'exp: unknown configuration "x"; known: none, bn, dropout.',
    );
  });
});

describe('experiments/lib/tasks', () => {
  it('seedList counts from the first seed', () => {
    expect(seedList({ seeds: 3, firstSeed: 5 })).toEqual([5, 6, 7]);
  });

  it('runs every task in this process (jobs 1): results in task order, the runner disposed', async () => {
    const saved = process.env.DROPNORM_PROGRESS;
    process.env.DROPNORM_PROGRESS = 'off';
    try {
      const log: string[] = [];
      const tasks = [
        { seed: 1, config: 'a' },
        { seed: 1, config: 'b' },
        { seed: 2, config: 'a' },
      ];
      const { results, backend } = await runExperimentTasks({
        label: 'test',
        jobs: 1,
        tasks,
        unitsPerTask: 2,
        pickBackend: async () => 'fake',
        createRunner: () => ({
          run: async (task, onProgress) => {
            onProgress(2, 'step');
            return `${task.config}${task.seed}`;
          },
          dispose: () => log.push('disposed'),
        }),
        doneLine: (task, r) => {
          log.push(r);
          return `seed ${task.seed} ${task.config} done`;
        },
      });
      expect(backend).toBe('fake');
      expect(results).toEqual(['a1', 'b1', 'a2']);
      expect(log).toEqual(['a1', 'b1', 'a2', 'disposed']);
    } finally {
      if (saved === undefined) delete process.env.DROPNORM_PROGRESS;
      else process.env.DROPNORM_PROGRESS = saved;
    }
  });
});

describe('experiments/lib/training and nets', () => {
  it('measuredRun counts the tensors a task leaves alive', async () => {
    const clean = await measuredRun(async () => tf.tidy(() => tf.ones([2]).sum().dataSync()[0]));
    expect(clean.result).toBe(2);
    expect(clean.leaked).toBe(0);
    expect(clean.seconds).toBeGreaterThanOrEqual(0);
    const leaky = await measuredRun(async () => tf.ones([2]));
    expect(leaky.leaked).toBe(1);
    leaky.result.dispose();
  });

  it("SeedDataCache builds a seed's split once and frees it all", () => {
    const before = tf.memory().numTensors;
    const built: number[] = [];
    const cache = new SeedDataCache(
      { trainSize: 20, heldOutSize: 10 },
      (seed, data, train) => {
        built.push(seed);
        return { extra: tf.zeros([data.nTrain]), labels: train.labels };
      },
      ({ extra }) => extra.dispose(),
    );
    const first = cache.get(3);
    expect(cache.get(3)).toBe(first);
    expect(first.data.nTrain).toBe(20);
    expect(first.data.nHeldOut).toBe(10);
    expect(first.labels).toHaveLength(20);
    // Class-balanced: two digits of each class.
    expect(
      Array.from({ length: 10 }, (_, c) => first.labels.filter((l) => l === c).length),
    ).toEqual(Array(10).fill(2));
    cache.get(4);
    expect(built).toEqual([3, 4]);
    cache.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('inferenceInputs returns what each layer receives in inference mode', () => {
    const dense = tf.layers.dense({ units: 3, inputShape: [2], kernelInitializer: 'ones' });
    const dropout = tf.layers.dropout({ rate: 0.5 });
    const last = tf.layers.dense({ units: 1, kernelInitializer: 'ones' });
    const model = tf.sequential({ layers: [dense, dropout, last] });
    const x = tf.tensor2d([
      [1, 2],
      [3, -4],
    ]);
    const [intoDropout, intoLast] = inferenceInputs(model, [dropout, last], x, 1);
    // Inference mode: dropout is the identity, so the last layer sees the first's output.
    const expected = [
      [3, 3, 3],
      [-1, -1, -1],
    ];
    expect(intoDropout.arraySync()).toEqual(expected);
    expect(intoLast.arraySync()).toEqual(expected);
    tf.dispose([intoDropout, intoLast, x]);
    model.dispose();
  });
});
