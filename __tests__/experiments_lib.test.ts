import { parseArgs } from '../experiments/lib/cli';
import { mnistClassCounts, mnistSplit } from '../experiments/lib/mnist';
import { mulberry32, withSeededMathRandom } from '../experiments/lib/random';
import { meanStd } from '../experiments/lib/stats';
import { fmt, formatTable, fromJson, markdownTable, pct, toJson } from '../experiments/lib/report';
import { barChart, lineChart, smallMultiples } from '../experiments/lib/charts';
import { duration, Progress, progressStyle } from '../experiments/lib/progress';

describe('experiments/lib/mnist', () => {
  it('ships 10,000 digits, 863 to 1,127 per class', () => {
    const counts = mnistClassCounts();
    expect(counts.reduce((a, b) => a + b, 0)).toBe(10000);
    expect(Math.min(...counts)).toBe(863);
    expect(Math.max(...counts)).toBe(1127);
  });

  it('mulberry32 is a deterministic uniform [0, 1) stream', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5)).toBeLessThan(0.05);
  });

  it('the same seed gives the same split, another seed another one', () => {
    const a = mnistSplit({ trainPerClass: 20, heldOutPerClass: 10, seed: 7 });
    const b = mnistSplit({ trainPerClass: 20, heldOutPerClass: 10, seed: 7 });
    const c = mnistSplit({ trainPerClass: 20, heldOutPerClass: 10, seed: 8 });
    expect(Array.from(a.train.ids)).toEqual(Array.from(b.train.ids));
    expect(Array.from(a.heldOut.ids)).toEqual(Array.from(b.heldOut.ids));
    expect(a.train.xs).toEqual(b.train.xs);
    expect(Array.from(a.train.ids)).not.toEqual(Array.from(c.train.ids));
  });

  it('train and heldOut are disjoint, class-balanced, one-hot and in [0, 1]', () => {
    const { train, heldOut } = mnistSplit({ trainPerClass: 30, heldOutPerClass: 15, seed: 3 });
    expect(train.n).toBe(300);
    expect(heldOut.n).toBe(150);
    const trainIds = new Set(train.ids);
    expect(trainIds.size).toBe(300);
    expect(Array.from(heldOut.ids).filter((id) => trainIds.has(id))).toEqual([]);
    for (const set of [train, heldOut]) {
      const perClass = new Array(10).fill(0);
      set.labels.forEach((l) => perClass[l]++);
      expect(new Set(perClass).size).toBe(1);
      for (let i = 0; i < set.n; i++) {
        const row = set.ys.subarray(i * 10, i * 10 + 10);
        expect(row.reduce((s, v) => s + v, 0)).toBe(1);
        expect(row[set.labels[i]]).toBe(1);
        expect(Math.floor(set.ids[i] / 10000)).toBe(set.labels[i]);
      }
      expect(set.xs.reduce((m, v) => Math.min(m, v), Infinity)).toBe(0);
      expect(set.xs.reduce((m, v) => Math.max(m, v), -Infinity)).toBeLessThanOrEqual(1);
    }
    // Classes are interleaved, not in blocks.
    expect(new Set(Array.from(train.labels.subarray(0, 30))).size).toBeGreaterThan(5);
  });

  it('refuses a split larger than the smallest class', () => {
    expect(() => mnistSplit({ trainPerClass: 800, heldOutPerClass: 64 })).toThrow(/≤ 863/);
  });
});

describe('experiments/lib/report', () => {
  it('formats numbers', () => {
    expect(fmt(0.000123)).toBe('1.23e-4');
    expect(fmt(12.345)).toBe('12.3');
    expect(fmt(0)).toBe('0');
    expect(fmt(2e-12)).toBe('2.00e-12');
    expect(fmt(NaN)).toBe('NaN');
    expect(fmt(-Infinity)).toBe('-∞');
    expect(pct(0.1234)).toBe('12.3%');
  });

  it('aligns table columns: text left, numbers right', () => {
    const table = formatTable(
      ['config', 'ratio'],
      [
        ['sigmoid', 2e-12],
        ['relu+bn', 1.8],
      ],
    );
    expect(table.split('\n')).toEqual([
      'config      ratio',
      '-------  --------',
      'sigmoid  2.00e-12',
      'relu+bn       1.8',
    ]);
  });

  it('writes a markdown table with right-aligned numeric columns', () => {
    expect(markdownTable(['a', 'b'], [['x|y', 1]])).toBe(
      '| a | b |\n| --- | ---: |\n| x\\|y | 1 |',
    );
  });

  it('mean ± sample std', () => {
    const { mean, std, n } = meanStd([1, 2, 3, 4, NaN]);
    expect(n).toBe(4);
    expect(mean).toBe(2.5);
    expect(std).toBeCloseTo(Math.sqrt(5 / 3), 12);
  });

  it('JSON keeps non-finite numbers', () => {
    const back = fromJson<{ a: number[] }>(toJson({ a: [1, NaN, Infinity, -Infinity] }));
    expect(back.a).toEqual([1, NaN, Infinity, -Infinity]);
  });
});

describe('experiments/lib/cli', () => {
  const defaults = { depth: 20, quick: false, out: 'reports/x', maxEpochs: 3 };

  it('parses --flag value, --flag=value, booleans and kebab-case', () => {
    expect(
      parseArgs(defaults, ['--depth', '8', '--quick', '--out=/tmp/r', '--max-epochs', '5']),
    ).toEqual({ depth: 8, quick: true, out: '/tmp/r', maxEpochs: 5 });
    expect(parseArgs({ ...defaults, quick: true }, ['--no-quick']).quick).toBe(false);
    expect(parseArgs(defaults, []).depth).toBe(20);
  });

  it('rejects unknown flags and bad numbers', () => {
    expect(() => parseArgs(defaults, ['--dpeth', '3'])).toThrow(/unknown flag --dpeth/);
    expect(() => parseArgs(defaults, ['--depth', 'x'])).toThrow(/finite number/);
    expect(() => parseArgs(defaults, ['--depth'])).toThrow(/needs a number/);
  });
});

describe('experiments/lib/charts specs', () => {
  it('a log-y line chart drops points a log axis cannot show', () => {
    const spec = lineChart(
      [
        { series: 'a', x: 1, y: 1e-3 },
        { series: 'a', x: 2, y: 0 },
        { series: 'b', x: 1, y: NaN },
      ],
      { logY: true },
    );
    expect((spec.data as { values: unknown[] }).values).toHaveLength(1);
  });

  it('bar chart error bars span value ± error; small multiples facet on a field', () => {
    const spec = barChart([{ category: 'a', value: 2, error: 0.5 }]);
    expect((spec.data as { values: { low: number; high: number }[] }).values[0]).toMatchObject({
      low: 1.5,
      high: 2.5,
    });
    const facet = smallMultiples(lineChart([{ series: 's', x: 0, y: 1 }]), 'series');
    expect(facet.facet).toMatchObject({ field: 'series' });
    expect(facet.spec).toMatchObject({ mark: { type: 'line' } });
  });
});

describe('experiments/lib/random', () => {
  it('withSeededMathRandom draws mulberry32(seed) and restores Math.random, also on a throw', async () => {
    const original = Math.random;
    const drawn = await withSeededMathRandom(9, async () => [Math.random(), Math.random()]);
    const expected = mulberry32(9);
    expect(drawn).toEqual([expected(), expected()]);
    expect(Math.random).toBe(original);
    await expect(
      withSeededMathRandom(9, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(Math.random).toBe(original);
  });
});

describe('experiments/lib/progress', () => {
  // What a reader of the stream sees: the writes joined, split into lines.
  const sink = (isTTY = false) => {
    const writes: string[] = [];
    const stream = { isTTY, columns: 120, write: (s: string) => writes.push(s) !== 0 } as never;
    return { writes, stream, lines: () => writes.join('').split('\n').slice(0, -1) };
  };

  it('without a TTY prints a plain line at start and each boundary, with done/total, elapsed and ETA', () => {
    const { writes, lines, stream } = sink();
    const p = new Progress(4, { label: 'exp', stream, intervalMs: 60_000 });
    expect(p.style).toBe('lines');
    p.boundary('config a started');
    p.tick(2, 'config a epoch 2');
    expect(lines()).toHaveLength(2); // ticks within the interval stay quiet
    p.boundary('config b started');
    p.done();
    expect(lines()).toEqual([
      '[exp] 0/4 (0%) elapsed 0s',
      '[exp] config a started | 0/4 (0%) elapsed 0s',
      '[exp] config b started | 2/4 (50%) elapsed 0s ETA 0s',
      expect.stringMatching(/^\[exp\] done \| 4\/4 \(100%\) elapsed \d+s$/),
    ]);
    expect(writes.join('')).not.toContain('\r');
    expect(writes.join('')).not.toContain('\u001b'); // no cursor control in a log
  });

  it('without a TTY prints a line once the interval has passed, saying what runs', async () => {
    const { lines, stream } = sink();
    const p = new Progress(10, { label: 'exp', stream, style: 'lines', intervalMs: 20 });
    p.tick(1, 'working');
    expect(lines()).toHaveLength(1); // the start line
    await new Promise((resolve) => setTimeout(resolve, 70));
    expect(lines().length).toBeGreaterThanOrEqual(2);
    expect(lines()[1]).toMatch(/^\[exp\] working \| 1\/10 \(10%\) elapsed 0s ETA 0s$/);
    p.done();
    const count = lines().length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lines()).toHaveLength(count); // done() stopped the timer
  });

  it('on a TTY redraws one bar in place and ends it with a newline', async () => {
    const { writes, stream } = sink(true);
    const p = new Progress(4, { label: 'exp', stream, throttleMs: 1 });
    expect(p.style).toBe('bar');
    p.tick(1);
    p.boundary('config a epoch 2');
    await new Promise((resolve) => setTimeout(resolve, 10));
    p.tick(1, 'config a epoch 2'); // past the throttle: redrawn at once
    expect(writes.join('')).toContain('2/4 (50%)');
    p.done();
    const out = writes.join('');
    expect(out).toContain(
      'exp [######------------------] 1/4 (25%) elapsed 0s ETA 0s config a epoch 2',
    );
    expect(out).toMatch(/exp \[#{24}\] 4\/4 \(100%\) elapsed \d+s done/);
    // Each redraw returns to the line's start (CSI 1 G, what readline.cursorTo(stream, 0) writes).
    expect(out.split('\x1b[1G').length).toBeGreaterThanOrEqual(3);
    expect(out).not.toContain('\u001b7'); // no cursor save/restore: stop() never jumps back
    expect(out.endsWith('\n')).toBe(true);
    expect(out.slice(0, -1)).not.toContain('\n');
  });

  it('stop() draws where the run stands and ends the line timer', async () => {
    const { lines, stream } = sink();
    const p = new Progress(4, { label: 'exp', stream, intervalMs: 20 });
    p.tick(1);
    p.stop('failed');
    expect(lines()[lines().length - 1]).toBe('[exp] failed | 1/4 (25%) elapsed 0s ETA 0s');
    const count = lines().length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(lines()).toHaveLength(count);
  });

  it('draws nothing with style off', () => {
    const { writes, stream } = sink(true);
    const p = new Progress(4, { label: 'exp', stream, style: 'off' });
    p.boundary('a');
    p.done();
    expect(writes).toEqual([]);
  });

  it('picks bar on a TTY, lines elsewhere, and DROPNORM_PROGRESS wins', () => {
    expect(progressStyle({ isTTY: true }, {})).toBe('bar');
    expect(progressStyle({ isTTY: false }, {})).toBe('lines');
    expect(progressStyle({ isTTY: true }, { DROPNORM_PROGRESS: 'lines' })).toBe('lines');
    expect(duration(75)).toBe('1m15s');
    expect(duration(8.2)).toBe('8s');
  });
});

describe('experiments/lib/cli on util.parseArgs', () => {
  const defaults = { depth: 20, quick: false, out: 'reports/x', maxEpochs: 3 };

  it('a later flag wins, only kebab-case is a flag, a missing string value is an error', () => {
    expect(parseArgs(defaults, ['--quick', '--no-quick']).quick).toBe(false);
    expect(parseArgs(defaults, ['--no-quick', '--quick']).quick).toBe(true);
    expect(parseArgs(defaults, ['--max-epochs=7']).maxEpochs).toBe(7);
    expect(() => parseArgs(defaults, ['--maxEpochs=7'])).toThrow(
      /unknown flag --maxEpochs\. Known flags: --depth, --quick, --out, --max-epochs\.$/,
    );
    expect(() => parseArgs(defaults, ['--no-depth'])).toThrow(/unknown flag --no-depth/);
    expect(() => parseArgs(defaults, ['--out'])).toThrow(/--out needs a string value/);
    expect(() => parseArgs(defaults, ['stray'])).toThrow(/unexpected argument/);
    expect(() => parseArgs(defaults, ['--depth', ''])).toThrow(/finite number/);
  });

  it('--help lists every flag with its default and exits 0', () => {
    const lines: string[] = [];
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => {
      throw new Error('exit');
    }) as never);
    try {
      expect(() =>
        parseArgs(defaults, ['--help'], { usage: 'use', log: (t) => lines.push(t) }),
      ).toThrow('exit');
      expect(exit).toHaveBeenCalledWith(0);
    } finally {
      exit.mockRestore();
    }
    expect(lines.join('\n').split('\n')).toEqual([
      'use',
      'Flags:',
      '  --depth <number>  (default: 20)',
      '  --quick  (default: false)',
      '  --out <string>  (default: "reports/x")',
      '  --max-epochs <number>  (default: 3)',
    ]);
  });
});
