import { execFileSync, execSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/**
 * The package as users get it: `npm run build` (CommonJS + ESM + declarations), `require('.')` from
 * the repo, and the packed tarball installed with @tensorflow/tfjs into a fresh project, used from
 * both `require` and `import`: build a model with the pack's layers, train one epoch, save and reload
 * it (file://), and check that the pack and the user share one tfjs instance.
 */
const root = path.resolve(__dirname, '..');
const run = (cmd: string, cwd: string) =>
  execSync(cmd, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240000 });

// The same program in both module systems; `load` differs only in how the modules are obtained.
const body = (dir: string) => `
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  const model = tf.sequential({ layers: [
    tf.layers.dense({ units: 8, inputShape: [4] }),
    dn.layers.batchNorm({ momentum: null }),
    dn.layers.dropout({ rate: 0.25, seed: 1 }),
    tf.layers.dense({ units: 1 }),
  ] });
  model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
  const x = tf.randomNormal([32, 4], 0, 1, 'float32', 1);
  const history = await model.fit(x, tf.sum(x, 1, true), { epochs: 1, batchSize: 8, verbose: 0 });
  await model.save('file://${dir}');
  const loaded = await tf.loadLayersModel(node.fileSystem('${dir}'));
  const diff = tf.max(tf.abs(tf.sub(model.predict(x), loaded.predict(x)))).dataSync()[0];
  const bn = dn.layers.batchNorm({ momentum: 0 });
  bn.apply(tf.tensor2d([[1], [2], [3], [4]]), { training: true });
  console.log(JSON.stringify({
    loss: history.history.loss[0],
    diff,
    classes: loaded.layers.map((l) => l.getClassName()),
    batches: loaded.layers[1].getWeights()[4].dataSync()[0],
    variance: bn.getWeights()[3].dataSync()[0],
    oneTfjs: bn instanceof tf.layers.Layer && tf.serialization.SerializationMap.getMap().classNameMap['DropnormBatchNorm'] !== undefined,
  }));
`;
const cjs = (dir: string) => `
const tf = require('@tensorflow/tfjs');
const dn = require('tfjs-dropnorm');
const node = require('tfjs-dropnorm/node');
(async () => {${body(dir)}})();
`;
const esm = (dir: string) => `
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import * as node from 'tfjs-dropnorm/node';
${body(dir)}
`;

function check(out: string): void {
  const r = JSON.parse(out.trim().split('\n').pop()!);
  expect(Number.isFinite(r.loss)).toBe(true);
  expect(r.diff).toBe(0);
  expect(r.classes).toEqual(['Dense', 'DropnormBatchNorm', 'DropnormDropout', 'Dense']);
  expect(r.batches).toBe(4);
  expect(r.variance).toBeCloseTo(5 / 3, 6);
  expect(r.oneTfjs).toBe(true);
}

describe('package', () => {
  beforeAll(() => {
    run('npm run build', root);
  });

  test('the build emits CommonJS, ESM and declarations for both entry points', () => {
    for (const f of [
      'cjs/index.js',
      'cjs/node/index.js',
      'esm/index.mjs',
      'esm/node/index.mjs',
      'types/index.d.ts',
      'types/node/index.d.ts',
    ]) {
      expect(fs.existsSync(path.join(root, 'dist', f))).toBe(true);
    }
    // The main ESM entry is browser-safe: no Node built-ins.
    expect(fs.readFileSync(path.join(root, 'dist/esm/index.mjs'), 'utf8')).not.toMatch(
      /from ['"](fs|path|module)['"]/,
    );
  });

  test("require('.') from the repo root works after the build", () => {
    const out = execFileSync(
      'node',
      [
        '-e',
        "const dn = require('.'); console.log(typeof dn.layers.batchNorm, typeof dn.BatchNorm)",
      ],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(out.trim()).toBe('function function');
  });

  test('the packed tarball installs and works from require and import, sharing the user tfjs', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-pack-'));
    try {
      const tgz = run(`npm pack --silent --pack-destination ${dir}`, root)
        .trim()
        .split('\n')
        .pop()!;
      const tfjsVersion = require(
        path.join(root, 'node_modules/@tensorflow/tfjs/package.json'),
      ).version;
      fs.writeFileSync(
        path.join(dir, 'package.json'),
        JSON.stringify({ name: 'consumer', private: true }),
      );
      run(
        `npm install --prefer-offline --no-audit --no-fund ${path.join(dir, tgz)} @tensorflow/tfjs@${tfjsVersion}`,
        dir,
      );
      // Optional peers stay optional.
      expect(fs.existsSync(path.join(dir, 'node_modules/@tensorflow/tfjs-node'))).toBe(false);
      fs.writeFileSync(path.join(dir, 'use.cjs'), cjs(path.join(dir, 'saved-cjs')));
      fs.writeFileSync(path.join(dir, 'use.mjs'), esm(path.join(dir, 'saved-esm')));
      check(execFileSync('node', ['use.cjs'], { cwd: dir, encoding: 'utf8' }));
      check(execFileSync('node', ['use.mjs'], { cwd: dir, encoding: 'utf8' }));
      expect(fs.readdirSync(path.join(dir, 'saved-esm')).sort()).toEqual([
        'model.json',
        'weights.bin',
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 240000);
});
