import { execFileSync, execSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..');
const run = (cmd: string, cwd: string) =>
  execSync(cmd, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240000 });

const probe = `
const tf = require('@tensorflow/tfjs');
const dn = require(process.argv[1]);
const node = require(process.argv[2]);
tf.env().set('IS_TEST', true);
const bn = dn.layers.batchNorm({ momentum: 0 });
bn.apply(tf.tensor2d([[1], [2], [3], [4]]), { training: true });
console.log(JSON.stringify({
  variance: bn.getWeights()[3].dataSync()[0],
  isLayer: bn instanceof tf.layers.Layer,
  fileSystem: typeof node.fileSystem,
}));
`;

describe('package', () => {
  beforeAll(() => {
    run('npm run build', root);
  });

  test('the build emits CommonJS and declarations for both entry points', () => {
    for (const f of ['index.js', 'index.d.ts', 'node/index.js', 'node/index.d.ts']) {
      expect(fs.existsSync(path.join(root, 'dist', f))).toBe(true);
    }
  });

  test("require('.') from the repo root works after the build", () => {
    const out = execFileSync('node', ['-e', probe, '.', 'tfjs-dropnorm/node'], {
      cwd: root,
      encoding: 'utf8',
    });
    const result = JSON.parse(out);
    expect(result.variance).toBeCloseTo(5 / 3, 6);
    expect(result.isLayer).toBe(true);
    expect(result.fileSystem).toBe('function');
  });

  test("require('tfjs-dropnorm') works in a project that installed the packed tarball", () => {
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
      expect(fs.existsSync(path.join(dir, 'node_modules/@tensorflow/tfjs-node'))).toBe(false);
      const out = execFileSync('node', ['-e', probe, 'tfjs-dropnorm', 'tfjs-dropnorm/node'], {
        cwd: dir,
        encoding: 'utf8',
      });
      const result = JSON.parse(out);
      expect(result.variance).toBeCloseTo(5 / 3, 6);
      // One tfjs instance: the pack's layer is an instance of the user's tf.layers.Layer.
      expect(result.isLayer).toBe(true);
      expect(result.fileSystem).toBe('function');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 240000);
});
