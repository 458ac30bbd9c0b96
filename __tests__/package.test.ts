import { execFileSync, execSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/**
 * The package as users get it: `npm run build` (the CommonJS build, its ES module wrappers and the
 * declarations of both), `require('.')` from the repo, and the packed tarball installed with
 * @tensorflow/tfjs into a fresh project, used from `require`, from `import`, from both in one
 * process and from two installed copies in one process; TypeScript consumers compiled under every
 * module resolution and run; @arethetypeswrong/cli on the tarball.
 */
const root = path.resolve(__dirname, '..');
const run = (cmd: string, cwd: string) =>
  execSync(cmd, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240000 });
const node = (file: string, cwd: string) =>
  execFileSync('node', [file], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const lastJson = (out: string) => JSON.parse(out.trim().split('\n').pop()!);

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
  const r = lastJson(out);
  expect(Number.isFinite(r.loss)).toBe(true);
  expect(r.diff).toBe(0);
  expect(r.classes).toEqual(['Dense', 'DropnormBatchNorm', 'DropnormDropout', 'Dense']);
  expect(r.batches).toBe(4);
  expect(r.variance).toBeCloseTo(5 / 3, 6);
  expect(r.oneTfjs).toBe(true);
}

// An ES module app with a CommonJS helper that requires the pack (the dual-package hazard): one
// module instance, so one set of classes, and a model built and loaded by either side is an
// instance of the other's classes.
const helperCjs = `
const dn = require('tfjs-dropnorm');
exports.dn = dn;
exports.makeDropout = () => dn.layers.dropout({ rate: 0.5, seed: 3 });
`;
const mixedMjs = (dir: string) => `
import { createRequire } from 'module';
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import dnDefault from 'tfjs-dropnorm';
import * as nodeEsm from 'tfjs-dropnorm/node';
import helper from './helper.cjs';
const require = createRequire(import.meta.url);
const dnCjs = require('tfjs-dropnorm');
const nodeCjs = require('tfjs-dropnorm/node');
tf.env().set('IS_TEST', true);
await tf.setBackend('cpu');
const model = tf.sequential({ layers: [
  tf.layers.dense({ units: 4, inputShape: [3] }),
  dnCjs.layers.batchNorm(),
  helper.makeDropout(),
] });
await model.save(nodeEsm.fileSystem('${dir}'));
const loaded = await tf.loadLayersModel(nodeCjs.fileSystem('${dir}'));
const [, bn, drop] = loaded.layers;
// Seed streams: the same seeded layer from either side draws the same sequence.
const x = tf.ones([1, 16]);
const a = dn.layers.dropout({ rate: 0.5, seed: 9 });
const b = dnCjs.layers.dropout({ rate: 0.5, seed: 9 });
const seq = (l) => [0, 1, 2].map(() => Array.from(l.apply(x, { training: true }).dataSync()).join(''));
console.log(JSON.stringify({
  sameModule: dn.BatchNorm === dnCjs.BatchNorm && dn.layers === dnCjs.layers && helper.dn === dnCjs,
  defaultIsNamespace: dnDefault === dnCjs,
  sameNode: nodeEsm.fileSystem === nodeCjs.fileSystem,
  instanceofBoth: bn instanceof dn.BatchNorm && bn instanceof dnCjs.BatchNorm &&
    drop instanceof dn.Dropout && drop instanceof dnCjs.Dropout,
  seeds: JSON.stringify(seq(a)) === JSON.stringify(seq(b)),
  classes: loaded.layers.map((l) => l.getClassName()),
}));
`;

// The pack installed twice (vendor/ holds a second copy of the same version): the second copy
// hands out the first one's exports, so nothing registers twice and instanceof holds.
const twoPathsCjs = (dir: string) => `
const tf = require('@tensorflow/tfjs');
const first = require('tfjs-dropnorm');
const second = require('./vendor/tfjs-dropnorm');
const secondNode = require('./vendor/tfjs-dropnorm/node');
const firstNode = require('tfjs-dropnorm/node');
let bypass = '';
try {
  // The copy's own modules, bypassing its entry point: the class-name guard still refuses.
  require('./vendor/tfjs-dropnorm/dist/cjs/index.js');
} catch (e) {
  bypass = e.message;
}
(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  const model = tf.sequential({ layers: [
    tf.layers.dense({ units: 4, inputShape: [3] }),
    second.layers.batchNorm(),
  ] });
  await model.save(secondNode.fileSystem('${dir}'));
  const loaded = await tf.loadLayersModel(firstNode.fileSystem('${dir}'));
  const esm = await import('./vendor/tfjs-dropnorm/dist/esm/index.mjs');
  console.log(JSON.stringify({
    same: first.BatchNorm === second.BatchNorm && first.layers === second.layers &&
      firstNode.fileSystem === secondNode.fileSystem && esm.BatchNorm === first.BatchNorm &&
      first.SeedStream === second.SeedStream,
    instanceofBoth: loaded.layers[1] instanceof first.BatchNorm && loaded.layers[1] instanceof second.BatchNorm &&
      second.layers.dropout({ rate: 0.1 }) instanceof first.Dropout,
    bypass,
  }));
})();
`;

// A TypeScript consumer: what tsc accepts must run, the default imports included.
const consumer = `
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import dnDefault from 'tfjs-dropnorm';
import { fileSystem, pickBackend } from 'tfjs-dropnorm/node';
import dnNode from 'tfjs-dropnorm/node';

const model = tf.sequential({
  layers: [
    tf.layers.dense({ units: 4, inputShape: [3] }),
    dn.layers.batchNorm({ varianceCorrection: 'unbiased' }),
    dn.layers.dropout({ rate: 0.5 }),
  ],
});
const result: dn.FoldBatchNormResult = dn.foldBatchNorm(model);
const y = result.model.predict(tf.ones([2, 3])) as tf.Tensor;
const io: tf.io.IOHandler = fileSystem('./unused');
console.log(JSON.stringify({
  shape: y.shape,
  folded: result.folded.length,
  io: typeof io.save,
  pick: typeof pickBackend,
  sameDefault: dnDefault.layers === dn.layers && dnDefault.BatchNorm === dn.BatchNorm,
  nodeDefault: dnNode.fileSystem === fileSystem,
}));
`;

/** The resolution modes of the issue: tsconfig options, source and output file names. */
const MODES = [
  {
    name: 'node10',
    options: { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true },
    src: 'c-node10.ts',
    out: 'c-node10.js',
  },
  {
    name: 'node16-cjs',
    options: { module: 'node16', moduleResolution: 'node16' },
    src: 'c-node16.cts',
    out: 'c-node16.cjs',
  },
  {
    name: 'node16-esm',
    options: { module: 'node16', moduleResolution: 'node16' },
    src: 'c-node16.mts',
    out: 'c-node16.mjs',
  },
  {
    name: 'bundler',
    options: { module: 'esnext', moduleResolution: 'bundler' },
    src: 'c-bundler.ts',
    out: 'c-bundler.js',
  },
] as const;

describe('package', () => {
  let dir = '';
  let tgz = '';

  beforeAll(() => {
    run('npm run build', root);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-pack-'));
    tgz = path.join(
      dir,
      run(`npm pack --silent --pack-destination ${dir}`, root).trim().split('\n').pop()!,
    );
    const tfjsVersion = require(
      path.join(root, 'node_modules/@tensorflow/tfjs/package.json'),
    ).version;
    fs.writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true }),
    );
    run(
      `npm install --prefer-offline --no-audit --no-fund ${tgz} @tensorflow/tfjs@${tfjsVersion}`,
      dir,
    );
  }, 240000);

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the build: one CommonJS copy of the code, ES module wrappers, declarations for each condition', () => {
    for (const f of [
      'cjs/main.js',
      'cjs/index.js',
      'cjs/node/main.js',
      'esm/index.mjs',
      'esm/index.d.mts',
      'esm/node/index.mjs',
      'esm/node/index.d.mts',
      'types/index.d.ts',
      'types/node/index.d.ts',
    ]) {
      expect(fs.existsSync(path.join(root, 'dist', f))).toBe(true);
    }
    // The ES module entry holds no code of its own: it imports the CommonJS build.
    const wrapper = fs.readFileSync(path.join(root, 'dist/esm/index.mjs'), 'utf8');
    expect(wrapper.match(/^import .*$/gm)).toEqual(["import pack from '../cjs/main.js';"]);
    // The main entry is browser-safe: no Node built-ins outside dist/cjs/node.
    const files = fs.readdirSync(path.join(root, 'dist/cjs'), { recursive: true }).map(String);
    for (const f of files.filter((f) => f.endsWith('.js') && !f.startsWith('node'))) {
      expect([f, fs.readFileSync(path.join(root, 'dist/cjs', f), 'utf8')]).not.toEqual([
        f,
        expect.stringMatching(/require\(["'](fs|path|module)["']\)/),
      ]);
    }
  });

  test('source maps work without src/: every map inlines the text of its source', () => {
    const cjsDir = path.join(root, 'dist/cjs');
    const maps = fs
      .readdirSync(cjsDir, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(20);
    for (const f of maps) {
      const map = JSON.parse(fs.readFileSync(path.join(cjsDir, f), 'utf8'));
      const source = path.resolve(path.dirname(path.join(cjsDir, f)), map.sources[0]);
      expect([f, map.sourcesContent?.[0]]).toEqual([f, fs.readFileSync(source, 'utf8')]);
    }
  });

  test("require('.') from the repo root works after the build", () => {
    const out = execFileSync(
      'node',
      [
        '-e',
        "const dn = require('.'); console.log(typeof dn.layers.batchNorm, typeof dn.BatchNorm)",
      ],
      { cwd: root, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('function function');
  });

  test('the packed tarball works from require and import, sharing the user tfjs', () => {
    // Optional peers stay optional.
    expect(fs.existsSync(path.join(dir, 'node_modules/@tensorflow/tfjs-node'))).toBe(false);
    fs.writeFileSync(path.join(dir, 'use.cjs'), cjs(path.join(dir, 'saved-cjs')));
    fs.writeFileSync(path.join(dir, 'use.mjs'), esm(path.join(dir, 'saved-esm')));
    check(node('use.cjs', dir));
    check(node('use.mjs', dir));
    const saved = fs.readdirSync(path.join(dir, 'saved-esm')).sort();
    expect(saved).toHaveLength(2);
    expect(saved[0]).toBe('model.json');
    expect(saved[1]).toMatch(/^weights\.[0-9a-f]{16}\.bin$/);
  }, 60000);

  test('import and require in one process share one module instance (no double registration)', () => {
    fs.writeFileSync(path.join(dir, 'helper.cjs'), helperCjs);
    fs.writeFileSync(path.join(dir, 'mixed.mjs'), mixedMjs(path.join(dir, 'saved-mixed')));
    expect(lastJson(node('mixed.mjs', dir))).toEqual({
      sameModule: true,
      defaultIsNamespace: true,
      sameNode: true,
      instanceofBoth: true,
      seeds: true,
      classes: ['Dense', 'DropnormBatchNorm', 'DropnormDropout'],
    });
  }, 60000);

  test('two installed copies in one process: the second hands out the first one, instanceof holds', () => {
    fs.cpSync(
      path.join(dir, 'node_modules/tfjs-dropnorm'),
      path.join(dir, 'vendor/tfjs-dropnorm'),
      { recursive: true },
    );
    fs.writeFileSync(path.join(dir, 'two.cjs'), twoPathsCjs(path.join(dir, 'saved-two')));
    const r = lastJson(node('two.cjs', dir));
    expect(r.same).toBe(true);
    expect(r.instanceofBoth).toBe(true);
    expect(r.bypass).toMatch(/'DropnormBatchNorm' is already registered by another class/);
  }, 60000);

  test.each(MODES.map((m) => [m.name, m]))(
    'a TypeScript consumer compiles (moduleResolution %s, strict, skipLibCheck) and runs',
    (_name, mode) => {
      const work = path.join(dir, `ts-${mode.name}`);
      fs.mkdirSync(work, { recursive: true });
      fs.writeFileSync(path.join(work, mode.src), consumer);
      fs.writeFileSync(
        path.join(work, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            ...mode.options,
            target: 'es2020',
            strict: true,
            skipLibCheck: true,
            types: [],
            lib: ['es2020', 'dom'],
            outDir: 'out',
          },
          files: [mode.src],
        }),
      );
      const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
      execFileSync('node', [tsc, '-p', 'tsconfig.json'], { cwd: work, encoding: 'utf8' });
      let out = path.join(work, 'out', mode.out);
      if (mode.name === 'bundler') {
        // What a bundler does with the import condition: esbuild bundles the wrapper and the
        // CommonJS build into one file (tfjs stays external, as an app's own dependency).
        fs.writeFileSync(path.join(work, 'out/package.json'), '{"type":"module"}');
        const bundled = path.join(work, 'out/bundle.cjs');
        execFileSync(
          path.join(root, 'node_modules/.bin/esbuild'),
          [out, '--bundle', '--platform=node', '--external:@tensorflow/*', `--outfile=${bundled}`],
          { cwd: work, stdio: 'pipe' },
        );
        expect(fs.readFileSync(bundled, 'utf8')).toMatch(/DropnormBatchNorm/);
        expect(lastJson(node(out, work))).toMatchObject({ shape: [2, 4] }); // unbundled ESM too
        out = bundled;
      }
      const r = lastJson(node(out, work));
      expect(r).toEqual({
        shape: [2, 4],
        folded: 1,
        io: 'function',
        pick: 'function',
        sameDefault: true,
        nodeDefault: true,
      });
    },
    60000,
  );

  test('@arethetypeswrong/cli finds no problem in the tarball', () => {
    const out = execFileSync(
      'node',
      [
        path.join(root, 'node_modules/@arethetypeswrong/cli/dist/index.js'),
        tgz,
        '--format',
        'json',
      ],
      { cwd: root, encoding: 'utf8', stdio: 'pipe' },
    );
    expect(JSON.parse(out).analysis.problems).toEqual([]); // and exit code 0, or execFileSync throws
  }, 60000);
});
