import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { judge, Row } from '../bench/compare';

const root = path.resolve(__dirname, '..');

describe('npm run compare', () => {
  test('verdicts come from the numbers: same, differs with its reason, or UNEXPECTED', () => {
    const base = { pair: 'p', property: 'q', tolerance: 0.01 };
    const rows: Row[] = [
      { ...base, pack: 1, builtin: 1.005, expectedDifference: null },
      { ...base, pack: 1, builtin: 2, expectedDifference: 'the reason' },
      { ...base, pack: 1, builtin: 2, expectedDifference: null },
      { ...base, pack: 1, builtin: 1, expectedDifference: 'the reason' },
    ];
    const judged = judge(rows);
    expect(judged.map((r) => r.verdict)).toEqual([
      'same',
      'differs: the reason',
      'UNEXPECTED: differs',
      'UNEXPECTED: same, expected a difference (the reason)',
    ]);
    expect(judged.map((r) => r.unexpected)).toEqual([false, false, true, true]);
  });

  test('on cpu every pair matches its expectation, and the report is written', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-compare-'));
    execFileSync(
      path.join(root, 'node_modules', '.bin', 'tsx'),
      ['bench/compare.ts', '--backend', 'cpu', '--out', out],
      {
        cwd: root,
        stdio: 'pipe',
        timeout: 120000,
      },
    );
    const result = JSON.parse(fs.readFileSync(path.join(out, 'compare.json'), 'utf8'));
    const pairs = new Set(result.rows.map((r: Row) => r.pair.split(' (')[0]));
    for (const p of [
      'Dropout',
      'SpatialDropout1D',
      'GaussianDropout',
      'AlphaDropout',
      "BatchNorm 'unbiased'",
      "BatchNorm 'biased'",
      'GroupNorm groups: 1 vs tf.layers.layerNormalization axis [1, 2, 3]',
      'GroupNorm groups: C',
      'RMSNorm vs x·rsqrt(mean(x²) + ε)·scale by hand',
    ]) {
      expect(pairs).toContain(p);
    }
    expect(result.rows.filter((r: Row) => r.unexpected)).toEqual([]);
    // Option types (issue 20, item 7): the pack gives a clear error where the built-in does not.
    const types = result.rows.filter((r: Row) => r.pair.endsWith('option types'));
    expect(types.length).toBeGreaterThanOrEqual(8);
    expect(types.map((r: Row) => [r.property, r.pack, r.builtin])).toEqual(
      types.map((r: Row) => [r.property, 1, 0]),
    );
    expect(fs.readFileSync(path.join(out, 'compare.md'), 'utf8')).toMatch(
      /match their expectation/,
    );
  }, 120000);
});
