import { parseArgs } from '../examples/lib/cli';
import { mnistClassCounts, mnistSplit, mulberry32 } from '../examples/lib/mnist';
import {
  fmt,
  formatTable,
  fromJson,
  markdownTable,
  meanStd,
  pct,
  toJson,
} from '../examples/lib/report';
import { barChart, lineChart, smallMultiples } from '../examples/lib/charts';

describe('examples/lib/mnist', () => {
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

describe('examples/lib/report', () => {
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

describe('examples/lib/cli', () => {
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

describe('examples/lib/charts specs', () => {
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
