import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import { fileSystem } from 'tfjs-dropnorm/node';

/**
 * fileSystem: crash-safe saves (every write, flush and rename of a save fails once, in turn: the
 * directory always holds the previous model or the new one, whole), loads that check what they read,
 * and local locations only.
 */
let root = '';
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-fs-'));
});
afterEach(() => {
  jest.restoreAllMocks();
  fs.rmSync(root, { recursive: true, force: true });
});

function model(seed: number): tf.LayersModel {
  const init = tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 6, inputShape: [4], kernelInitializer: init }),
      dn.layers.batchNorm({ momentum: null }),
      tf.layers.dense({ units: 2, kernelInitializer: init }),
    ],
  });
}

const x = tf.tensor2d([
  [1, 2, 3, 4],
  [-1, 0.5, 2, 0],
]);
const predict = (m: tf.LayersModel) => Array.from((m.predict(x) as tf.Tensor).dataSync());
const files = (dir: string) => fs.readdirSync(dir).sort();

test('save writes model.json and weights.<hash>.bin; identical weights keep the name, new weights replace the old file', async () => {
  const dir = path.join(root, 'm');
  const a = model(1);
  await a.save(fileSystem(dir));
  const first = files(dir);
  expect(first).toEqual(['model.json', expect.stringMatching(/^weights\.[0-9a-f]{16}\.bin$/)]);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  expect(json.weightsManifest[0].paths).toEqual([first[1]]);
  expect(predict(await tf.loadLayersModel(fileSystem(dir)))).toEqual(predict(a));

  await a.save(fileSystem(`file://${dir}`));
  expect(files(dir)).toEqual(first);

  const b = model(2);
  await b.save(fileSystem(dir));
  const second = files(dir);
  expect(second).toHaveLength(2);
  expect(second[1]).not.toBe(first[1]);
  expect(predict(await tf.loadLayersModel(fileSystem(path.join(dir, 'model.json'))))).toEqual(
    predict(b),
  );
});

test('a directory saved in the single-file layout (weights.bin) is overwritten cleanly', async () => {
  const dir = path.join(root, 'm');
  await model(1).save(fileSystem(dir));
  const [, weights] = files(dir);
  fs.renameSync(path.join(dir, weights), path.join(dir, 'weights.bin'));
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  json.weightsManifest[0].paths = ['weights.bin'];
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  await tf.loadLayersModel(fileSystem(dir)); // as tfjs-node writes it

  await model(2).save(fileSystem(dir));
  expect(files(dir)).toEqual(['model.json', expect.stringMatching(/^weights\.[0-9a-f]{16}\.bin$/)]);
});

/**
 * Fails the `failAt`-th file-system step of a save (counting from 1): opening, writing, flushing and
 * closing a file, renaming, removing. A failed write first writes half its data (a full disk).
 * Returns the names of the steps seen.
 */
function injectFailure(failAt: number): string[] {
  const steps: string[] = [];
  const tick = (name: string) => {
    steps.push(name);
    if (steps.length === failAt) {
      throw Object.assign(new Error(`injected failure at step ${failAt} (${name})`), {
        code: 'ENOSPC',
      });
    }
  };
  const realOpen = fs.promises.open.bind(fs.promises);
  const realRename = fs.promises.rename.bind(fs.promises);
  const realUnlink = fs.promises.unlink.bind(fs.promises);
  jest.spyOn(fs.promises, 'open').mockImplementation(async (file, flags, mode) => {
    tick(`open ${path.basename(String(file))}`);
    const handle = await realOpen(file, flags, mode);
    return new Proxy(handle, {
      get(target, prop) {
        if (prop === 'writeFile') {
          return async (data: Uint8Array) => {
            try {
              tick('write');
            } catch (e) {
              await target.writeFile(data.subarray(0, Math.floor(data.length / 2)));
              throw e;
            }
            return target.writeFile(data);
          };
        }
        if (prop === 'sync' || prop === 'close') {
          return async () => {
            tick(prop);
            return target[prop]();
          };
        }
        const v = Reflect.get(target, prop);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  });
  jest.spyOn(fs.promises, 'rename').mockImplementation(async (from, to) => {
    tick(`rename → ${path.basename(String(to))}`);
    return realRename(from, to);
  });
  jest.spyOn(fs.promises, 'unlink').mockImplementation(async (file) => {
    tick(`unlink ${path.basename(String(file))}`);
    return realUnlink(file);
  });
  return steps;
}

test('a save that fails at any step leaves the previous model, whole and loadable (or the new one, whole)', async () => {
  const dir = path.join(root, 'm');
  const a = model(1);
  const b = model(2);
  const expectedA = predict(a);
  const expectedB = predict(b);
  await a.save(fileSystem(dir));
  const filesA = files(dir);

  // The steps of one successful overwrite: 2 × (open, write, sync, close, rename) for the weights
  // and model.json, then the directory's open, sync, close, and removing the old weights file.
  await a.save(fileSystem(path.join(root, 'probe')));
  const seen = injectFailure(0);
  await b.save(fileSystem(path.join(root, 'probe')));
  jest.restoreAllMocks();
  const steps = seen.length;
  expect(steps).toBe(14);
  expect(seen.filter((s) => s.startsWith('rename')).length).toBe(2);
  expect(seen[steps - 1]).toMatch(/^unlink weights\./);

  let failedSaves = 0;
  for (let k = 1; k <= steps; k++) {
    await a.save(fileSystem(dir)); // start from A each time
    const names = injectFailure(k);
    let error: Error | null = null;
    await b.save(fileSystem(dir)).catch((e: Error) => (error = e));
    jest.restoreAllMocks();
    const loaded = predict(await tf.loadLayersModel(fileSystem(dir)));
    const label = `failure at step ${k} (${names[k - 1]})`;
    if (error) {
      failedSaves++;
      expect([label, (error as Error).message]).toEqual([
        label,
        expect.stringMatching(new RegExp(`fileSystem: saving the model to ${dir} failed while`)),
      ]);
      expect([label, loaded]).toEqual([label, expectedA]);
      expect([label, files(dir)]).toEqual([label, filesA]); // no temporary or half file left
    } else {
      // Only steps after the commit (removing A's weights) may fail without failing the save.
      expect([label, names[k - 1]]).toEqual([
        label,
        expect.stringMatching(/^unlink|^open m$|sync|close/),
      ]);
      expect([label, loaded]).toEqual([label, expectedB]);
    }
  }
  expect(failedSaves).toBe(10); // every step up to the model.json rename
});

test('a first save that fails at any step leaves no model and no file', async () => {
  const b = model(2);
  const seen = injectFailure(0);
  await b.save(fileSystem(path.join(root, 'probe')));
  jest.restoreAllMocks();
  for (let k = 1; k <= seen.length; k++) {
    const dir = path.join(root, `first-${k}`);
    injectFailure(k);
    const failed = await b.save(fileSystem(dir)).then(
      () => false,
      () => true,
    );
    jest.restoreAllMocks();
    if (failed) {
      expect([k, files(dir)]).toEqual([k, []]);
      await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
        /cannot read .*model\.json/,
      );
    } else {
      expect(predict(await tf.loadLayersModel(fileSystem(dir)))).toEqual(predict(b));
    }
  }
});

describe('load checks what it reads', () => {
  let dir = '';
  let weights = '';
  beforeEach(async () => {
    dir = path.join(root, 'm');
    await model(1).save(fileSystem(dir));
    weights = path.join(dir, files(dir)[1]);
  });
  // 4·6 + 6 (dense) + 4·6 + 1 (BN: γ, β, mean, variance, count) + 6·2 + 2 (dense) floats.
  const bytes = (4 * 6 + 6 + 4 * 6 + 1 + 6 * 2 + 2) * 4;

  test('a truncated weights file: the file and both sizes are named', async () => {
    expect(fs.statSync(weights).size).toBe(bytes);
    fs.truncateSync(weights, bytes - 8);
    await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `fileSystem: ${weights} holds ${bytes - 8} bytes, but the weightsManifest of ${path.join(dir, 'model.json')} describes ${bytes} bytes`,
    );
  });

  test('extra bytes in the weights file are an error too', async () => {
    fs.appendFileSync(weights, Buffer.alloc(4));
    await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `${weights} holds ${bytes + 4} bytes, but`,
    );
  });

  test('a missing weights file names it', async () => {
    fs.rmSync(weights);
    await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `fileSystem: cannot read ${weights}, a weights file of ${path.join(dir, 'model.json')}`,
    );
  });

  test('invalid JSON names the path', async () => {
    const json = path.join(dir, 'model.json');
    fs.writeFileSync(json, fs.readFileSync(json, 'utf8').slice(0, 100));
    await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `fileSystem: ${json} is not valid JSON`,
    );
  });

  test.each(['modelTopology', 'weightsManifest'])(
    'a missing %s names the path and field',
    async (field) => {
      const json = path.join(dir, 'model.json');
      const content = JSON.parse(fs.readFileSync(json, 'utf8'));
      delete content[field];
      fs.writeFileSync(json, JSON.stringify(content));
      await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
        `fileSystem: ${json} has no '${field}' field`,
      );
    },
  );

  test('a malformed weightsManifest names the path', async () => {
    const json = path.join(dir, 'model.json');
    const content = JSON.parse(fs.readFileSync(json, 'utf8'));
    content.weightsManifest = [{ paths: 'weights.bin', weights: [] }];
    fs.writeFileSync(json, JSON.stringify(content));
    await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      `fileSystem: the 'weightsManifest' field of ${json} is malformed`,
    );
  });
});

describe('locations', () => {
  test.each([
    'http://example.com/model.json',
    'https://x/y',
    'indexeddb://my-model',
    'localstorage://m',
  ])('%s is refused with the scheme named', (location) => {
    expect(() => fileSystem(location)).toThrow(dn.DropnormValueError);
    expect(() => fileSystem(location)).toThrow(
      `fileSystem: expected location to be a local path or a file:// URL, received: location=${JSON.stringify(location)}`,
    );
    expect(fs.existsSync(path.join(process.cwd(), location.split(':')[0] + ':'))).toBe(false);
  });

  test('an empty or non-string location is refused', () => {
    expect(() => fileSystem('')).toThrow(/expected location to be a directory path/);
    expect(() => fileSystem(42 as unknown as string)).toThrow(/received: location=42/);
  });

  test('file:// URLs work through model.save and tf.loadLayersModel', async () => {
    const dir = path.join(root, 'routed');
    const a = model(3);
    await a.save(`file://${dir}`);
    expect(predict(await tf.loadLayersModel(`file://${dir}/model.json`))).toEqual(predict(a));
  });
});

/** Issue 20, item 8: locations, weights paths, content hashes, unreferenced weights. */
describe('fileSystem: what is saved at a location loads from it, and nothing else is read', () => {
  const json = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

  test('a path ending in .json names the model.json file: save and load the same location', async () => {
    const a = model(1);
    const location = path.join(root, 'dir', 'my-model.json');
    await a.save(fileSystem(location));
    expect(files(path.join(root, 'dir'))).toEqual([
      'my-model.json',
      expect.stringMatching(/^weights\.[0-9a-f]{16}\.bin$/),
    ]);
    expect(predict(await tf.loadLayersModel(fileSystem(location)))).toEqual(predict(a));
    expect(predict(await tf.loadLayersModel(`file://${location}`))).toEqual(predict(a));
  });

  test('an existing directory named *.json is used as a directory: a model beside it is untouched', async () => {
    const a = model(1);
    const b = model(2);
    const beside = model(3);
    await beside.save(fileSystem(root)); // root/model.json + its weights
    const dir = path.join(root, 'saved.json');
    await a.save(fileSystem(path.join(root, 'tmp')));
    fs.renameSync(path.join(root, 'tmp'), dir); // a model saved into a directory named *.json
    const rootFiles = files(root);
    await b.save(fileSystem(dir));
    expect(files(root)).toEqual(rootFiles);
    expect(predict(await tf.loadLayersModel(fileSystem(root)))).toEqual(predict(beside));
    expect(files(dir)).toEqual(['model.json', expect.stringMatching(/^weights\./)]);
    expect(predict(await tf.loadLayersModel(fileSystem(dir)))).toEqual(predict(b));
  });

  test.each([
    ['../', (w: string) => `../outside/${w}`],
    ['an absolute path', (w: string) => path.join(root, 'outside', w)],
    ['a nested ../', (w: string) => `sub/../../outside/${w}`],
  ])('a weightsManifest path with %s is refused at load, naming it', async (_what, rewrite) => {
    const dir = path.join(root, 'm');
    await model(1).save(fileSystem(dir));
    const weights = files(dir)[1];
    // A real model outside the directory: the load must not read it.
    fs.mkdirSync(path.join(root, 'outside'));
    fs.copyFileSync(path.join(dir, weights), path.join(root, 'outside', weights));
    const content = json(path.join(dir, 'model.json'));
    content.weightsManifest[0].paths = [rewrite(weights)];
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(content));
    const read = jest.spyOn(fs.promises, 'readFile');
    await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      /^fileSystem: the weightsManifest of .*model\.json names the weights file ".*", which is not inside the model directory \(an absolute path or one with \.\.\/\)\. Refused/,
    );
    expect(read.mock.calls.map((c) => String(c[0]))).not.toContainEqual(
      expect.stringContaining('outside'),
    );
  });

  test('a same-size corrupted weights file is refused: its content does not match its name', async () => {
    const dir = path.join(root, 'm');
    await model(1).save(fileSystem(dir));
    const weights = path.join(dir, files(dir)[1]);
    const bytes = fs.readFileSync(weights);
    bytes.writeFloatLE(NaN, 0); // loads and predicts NaN if unchecked
    fs.writeFileSync(weights, bytes);
    await expect(tf.loadLayersModel(fileSystem(dir))).rejects.toThrow(
      /^fileSystem: the content of .*weights\.([0-9a-f]{16})\.bin does not match its name: its SHA-256 begins [0-9a-f]{16}, not \1 .*The file is corrupted; save the model again\./,
    );
  });

  test('after a save, weights files no model.json references are removed; other models and files stay', async () => {
    const dir = path.join(root, 'm');
    const a = model(1);
    const other = model(4);
    await other.save(fileSystem(path.join(dir, 'other.json'))); // a second model in the directory
    const orphan = 'weights.0123456789abcdef.bin'; // left by an interrupted or concurrent save
    fs.writeFileSync(path.join(dir, orphan), Buffer.alloc(8));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    await a.save(fileSystem(dir));
    const left = files(dir);
    expect(left).not.toContain(orphan);
    expect(left).toContain('notes.txt');
    const referenced = [
      ...json(path.join(dir, 'model.json')).weightsManifest[0].paths,
      ...json(path.join(dir, 'other.json')).weightsManifest[0].paths,
    ];
    expect(left.filter((f) => f.startsWith('weights.')).sort()).toEqual([...referenced].sort());
    expect(predict(await tf.loadLayersModel(fileSystem(dir)))).toEqual(predict(a));
    expect(predict(await tf.loadLayersModel(fileSystem(path.join(dir, 'other.json'))))).toEqual(
      predict(other),
    );
  });

  test('a weights file a save in progress announced is kept; a stale announcement is not', async () => {
    const dir = path.join(root, 'm');
    await model(1).save(fileSystem(dir));
    const pending = 'weights.00000000000000aa.bin';
    const stale = 'weights.00000000000000bb.bin';
    for (const w of [pending, stale]) fs.writeFileSync(path.join(dir, w), Buffer.alloc(8));
    fs.writeFileSync(path.join(dir, `.${pending}.999.abcd.saving`), '');
    const staleMarker = path.join(dir, `.${stale}.998.abcd.saving`);
    fs.writeFileSync(staleMarker, '');
    const old = (Date.now() - 2 * 60 * 60 * 1000) / 1000;
    fs.utimesSync(staleMarker, old, old);
    await model(2).save(fileSystem(dir));
    const left = files(dir);
    expect(left).toContain(pending);
    expect(left).toContain(`.${pending}.999.abcd.saving`);
    expect(left).not.toContain(stale);
    expect(left).not.toContain(path.basename(staleMarker));
  });

  test('concurrent saves and loads: every load succeeds, one weights file is left', async () => {
    const dir = path.join(root, 'm');
    const models = [1, 2, 3, 4].map(model);
    const expected = models.map(predict);
    await models[0].save(fileSystem(dir));
    let saving = true;
    const loads: number[][] = [];
    const reader = (async () => {
      while (saving) loads.push(predict(await tf.loadLayersModel(fileSystem(dir))));
    })();
    for (let round = 0; round < 3; round++) {
      await Promise.all(models.map((m) => m.save(fileSystem(dir))));
    }
    saving = false;
    await reader;
    expect(loads.length).toBeGreaterThan(0);
    for (const l of loads) expect(expected).toContainEqual(l);
    const left = files(dir);
    expect(left.filter((f) => f.endsWith('.saving') || f.endsWith('.tmp'))).toEqual([]);
    expect(left).toEqual([
      'model.json',
      ...json(path.join(dir, 'model.json')).weightsManifest[0].paths,
    ]);
  });

  test('a save that cannot announce its weights (marker write fails) fails cleanly', async () => {
    const dir = path.join(root, 'm');
    const a = model(1);
    await a.save(fileSystem(dir));
    const before = files(dir);
    const realWriteFile = fs.promises.writeFile.bind(fs.promises);
    jest.spyOn(fs.promises, 'writeFile').mockImplementation(async (file, data, options) => {
      if (String(file).endsWith('.saving')) {
        throw Object.assign(new Error('injected: disk full'), { code: 'ENOSPC' });
      }
      return realWriteFile(file, data, options);
    });
    await expect(model(2).save(fileSystem(dir))).rejects.toThrow(
      /^fileSystem: saving the model to .* failed while marking weights\.[0-9a-f]{16}\.bin as being saved: injected: disk full/,
    );
    jest.restoreAllMocks();
    expect(files(dir)).toEqual(before);
    expect(predict(await tf.loadLayersModel(fileSystem(dir)))).toEqual(predict(a));
  });
});
