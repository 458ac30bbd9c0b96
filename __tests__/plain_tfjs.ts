/**
 * Loading an export where only plain tfjs exists: a child Node process that requires
 * @tensorflow/tfjs and nothing of the pack (shared by the export tests).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

const root = path.resolve(__dirname, '..');

/**
 * Loads each saved model in a child Node process that requires @tensorflow/tfjs and nothing of
 * the pack: model.json and the weight files read by hand, through tf.io.fromMemory. `y` is the
 * (first) output's values, `ys` every output's.
 */
export function predictElsewhere(
  jobs: Array<{ name: string; dir: string; x: tf.Tensor }>,
): Record<string, { y: number[]; ys: number[][]; classes: string[]; packLoaded: boolean }> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-plain-'));
  try {
    const script = `
const fs = require('fs');
const path = require('path');
const tf = require(${JSON.stringify(path.join(root, 'node_modules/@tensorflow/tfjs'))});
(async () => {
  tf.env().set('IS_TEST', true);
  await tf.setBackend('cpu');
  const out = {};
  for (const job of JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))) {
    const json = JSON.parse(fs.readFileSync(path.join(job.dir, 'model.json'), 'utf8'));
    const specs = [];
    const parts = [];
    for (const group of json.weightsManifest) {
      specs.push(...group.weights);
      for (const p of group.paths) parts.push(fs.readFileSync(path.join(job.dir, p)));
    }
    const data = Buffer.concat(parts);
    const model = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: specs,
      weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
    }));
    const y = model.predict(tf.tensor(job.x, job.shape));
    const ys = [];
    for (const t of Array.isArray(y) ? y : [y]) ys.push(Array.from(await t.data()));
    out[job.name] = {
      y: ys[0],
      ys,
      classes: model.layers.map((l) => l.getClassName()),
      packLoaded:
        Object.keys(tf.serialization.SerializationMap.getMap().classNameMap).some((n) => n.startsWith('Dropnorm')) ||
        Object.keys(require.cache).some((f) => !f.includes('node_modules') && f !== __filename),
    };
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`;
    fs.writeFileSync(path.join(work, 'plain.js'), script);
    fs.writeFileSync(
      path.join(work, 'jobs.json'),
      JSON.stringify(
        jobs.map((j) => ({
          name: j.name,
          dir: j.dir,
          x: Array.from(j.x.dataSync()),
          shape: j.x.shape,
        })),
      ),
    );
    const out = execFileSync('node', [path.join(work, 'plain.js'), path.join(work, 'jobs.json')], {
      cwd: work,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60000,
    });
    return JSON.parse(out.trim().split('\n').pop()!);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
