/**
 * A `file://` IO handler for plain `@tensorflow/tfjs` in Node: saves and loads a LayersModel as a
 * directory holding `model.json` and one weights file, which `model.json`'s `weightsManifest` names,
 * so `@tensorflow/tfjs-node`'s file handler loads what this one saves and the reverse. Node-only.
 *
 * Saving is crash-safe: a save that fails at any point (disk full, a killed process) leaves the
 * previous model in the directory loadable and consistent, or no model at all for a first save.
 * Loading checks what it reads: invalid JSON, a missing field, or weight files whose size differs
 * from the manifest are errors naming the file.
 */
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { DropnormValueError, invalidArgument } from '../errors';

const MODEL_JSON = 'model.json';
const SCHEME = 'file://';
const OWNER = 'fileSystem';

/** The local path of `location`: a plain path or a `file://` URL; any other scheme is an error. */
function localPath(location: unknown): string {
  if (typeof location !== 'string' || location === '') {
    throw invalidArgument(
      OWNER,
      'location',
      location,
      "to be a directory path or a 'file://' URL (a non-empty string)",
      "fileSystem takes no options; for tfjs-node's [model.json, weights.bin] form pass the directory.",
    );
  }
  if (location.startsWith(SCHEME)) return location.slice(SCHEME.length);
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(location);
  if (scheme) {
    throw invalidArgument(
      OWNER,
      'location',
      location,
      'to be a local path or a file:// URL',
      `fileSystem reads and writes local files only; give '${scheme[1]}://' URLs to model.save / tf.loadLayersModel directly (tfjs's own handlers), or use a local directory.`,
    );
  }
  return location;
}

/** Bytes per element of each dtype a weight can be stored as (string weights have no fixed size). */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/** The byte length the manifest entries describe, or null when it cannot be known (strings). */
function manifestBytes(weights: readonly tf.io.WeightsManifestEntry[]): number | null {
  let total = 0;
  for (const w of weights) {
    const dtype = w.quantization?.dtype ?? w.dtype;
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) return null;
    total += size * w.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

/** A file name inside the model's directory: no separators, no '..' (never touch files outside). */
function isLocalName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    path.basename(name) === name
  );
}

/** The weight files the directory's current model.json references (none if there is none). */
async function referencedWeights(jsonPath: string): Promise<string[]> {
  try {
    const json = JSON.parse(await fs.promises.readFile(jsonPath, 'utf8')) as tf.io.ModelJSON;
    return (json.weightsManifest ?? []).flatMap((g) => g.paths).filter(isLocalName);
  } catch {
    return []; // nothing there, or nothing a loader could use: nothing to clean up
  }
}

async function removeQuietly(file: string): Promise<void> {
  try {
    await fs.promises.unlink(file);
  } catch {
    // already gone, or cannot be removed: a leftover file never makes the model inconsistent
  }
}

/**
 * Writes `data` to `target` atomically: a temporary file in the same directory (so the rename
 * never crosses file systems), flushed to disk (fsync), then renamed over `target`. Either the old
 * `target` or the complete new one exists at every moment.
 */
async function writeAtomically(target: string, data: Uint8Array): Promise<void> {
  const tmp = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
  try {
    const handle = await fs.promises.open(tmp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(tmp, target);
  } catch (e) {
    await removeQuietly(tmp);
    throw e;
  }
}

/** Flushes the directory entry (the renames) to disk; false where the platform cannot. */
async function syncDirectory(dir: string): Promise<boolean> {
  try {
    const handle = await fs.promises.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    return true;
  } catch {
    return false;
  }
}

async function saveModel(target: string, artifacts: tf.io.ModelArtifacts): Promise<void> {
  if (artifacts.modelTopology instanceof ArrayBuffer) {
    throw new DropnormValueError(
      `${OWNER}: saving a binary (graph) model topology is not supported; save a LayersModel.`,
    );
  }
  const dir = target.endsWith('.json') ? path.dirname(target) : target;
  const jsonPath = path.join(dir, MODEL_JSON);
  const weights = Buffer.from(
    artifacts.weightData
      ? tf.io.CompositeArrayBuffer.join(artifacts.weightData)
      : new ArrayBuffer(0),
  );
  // A new name for new weights: the old model.json keeps pointing at the old file until the new
  // model.json replaces it, so no moment pairs one save's topology with another's weights. Named
  // by content, identical weights get the identical name (saving twice changes nothing).
  const weightsName = `weights.${createHash('sha256').update(weights).digest('hex').slice(0, 16)}.bin`;
  const weightsManifest: tf.io.WeightsManifestConfig = [
    { paths: [weightsName], weights: artifacts.weightSpecs ?? [] },
  ];
  // The model.json fields tfjs-node writes (tfjs's own builder for them is not exported).
  const modelJSON: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    weightsManifest,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
  };
  if (artifacts.trainingConfig != null) modelJSON.trainingConfig = artifacts.trainingConfig;
  if (artifacts.signature != null) modelJSON.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata != null) {
    modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
  }

  let step = `creating ${dir}`;
  let wroteWeights = false;
  const previous = new Set<string>();
  try {
    await fs.promises.mkdir(dir, { recursive: true });
    for (const p of await referencedWeights(jsonPath)) previous.add(p);
    step = `writing ${path.join(dir, weightsName)}`;
    await writeAtomically(path.join(dir, weightsName), weights);
    wroteWeights = true;
    step = `writing ${jsonPath}`;
    await writeAtomically(jsonPath, Buffer.from(JSON.stringify(modelJSON)));
  } catch (e) {
    // The new weights file is not referenced by anything unless the old model uses it too.
    if (wroteWeights && !previous.has(weightsName)) {
      await removeQuietly(path.join(dir, weightsName));
    }
    const error = new Error(
      `${OWNER}: saving the model to ${dir} failed while ${step}: ${(e as Error).message}. ` +
        'The model previously saved there, if any, is unchanged.',
    );
    (error as Error & { cause?: unknown }).cause = e;
    throw error;
  }
  // Committed. The old weights go only once the new model.json is durably in place, so a crash
  // here at worst leaves an unreferenced old weights file behind.
  if (await syncDirectory(dir)) {
    for (const p of previous) if (p !== weightsName) await removeQuietly(path.join(dir, p));
  }
}

/** `model.json`'s parsed content, checked for the fields a LayersModel loader needs. */
async function readModelJSON(jsonPath: string): Promise<tf.io.ModelJSON> {
  let text: string;
  try {
    text = await fs.promises.readFile(jsonPath, 'utf8');
  } catch (e) {
    throw new DropnormValueError(`${OWNER}: cannot read ${jsonPath}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DropnormValueError(
      `${OWNER}: ${jsonPath} is not valid JSON (${(e as Error).message}); the file is damaged or not a tfjs model.json. Save the model again.`,
    );
  }
  const fix = 'A tfjs LayersModel model.json has modelTopology and weightsManifest.';
  if (json == null || typeof json !== 'object' || Array.isArray(json)) {
    throw new DropnormValueError(`${OWNER}: ${jsonPath} is not a JSON object. ${fix}`);
  }
  const model = json as Partial<tf.io.ModelJSON>;
  for (const field of ['modelTopology', 'weightsManifest'] as const) {
    if (model[field] == null) {
      throw new DropnormValueError(`${OWNER}: ${jsonPath} has no '${field}' field. ${fix}`);
    }
  }
  const groups = model.weightsManifest as unknown;
  const valid =
    Array.isArray(groups) &&
    groups.every(
      (g) =>
        g != null &&
        Array.isArray(g.paths) &&
        g.paths.every((p: unknown) => typeof p === 'string') &&
        Array.isArray(g.weights),
    );
  if (!valid) {
    throw new DropnormValueError(
      `${OWNER}: the 'weightsManifest' field of ${jsonPath} is malformed: expected an array of { paths: string[], weights: [...] }. ${fix}`,
    );
  }
  return model as tf.io.ModelJSON;
}

async function loadModel(target: string): Promise<tf.io.ModelArtifacts> {
  const jsonPath = target.endsWith('.json') ? target : path.join(target, MODEL_JSON);
  const modelJSON = await readModelJSON(jsonPath);
  const dir = path.dirname(jsonPath);
  return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
    const specs: tf.io.WeightsManifestEntry[] = [];
    const buffers: ArrayBuffer[] = [];
    for (const group of manifest) {
      specs.push(...group.weights);
      const files: Array<{ file: string; bytes: number }> = [];
      for (const p of group.paths) {
        const file = path.join(dir, p);
        let b: Buffer;
        try {
          b = await fs.promises.readFile(file);
        } catch (e) {
          throw new DropnormValueError(
            `${OWNER}: cannot read ${file}, a weights file of ${jsonPath}: ${(e as Error).message}`,
          );
        }
        files.push({ file, bytes: b.byteLength });
        buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
      }
      const expected = manifestBytes(group.weights);
      const actual = files.reduce((s, f) => s + f.bytes, 0);
      if (expected !== null && actual !== expected) {
        const held = files.map((f) => `${f.file} holds ${f.bytes} bytes`).join(', ');
        throw new DropnormValueError(
          `${OWNER}: ${held}, but the weightsManifest of ${jsonPath} describes ${expected} bytes ` +
            `(${group.weights.length} weights). The weights file is truncated, padded or from another save; save the model again.`,
        );
      }
    }
    return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
  });
}

/**
 * An IOHandler for `model.save(handler)` and `tf.loadLayersModel(handler)`. It takes one location
 * and no options (there is nothing to configure): anything but a non-empty string is an error.
 *
 * Save writes `model.json` and `weights.<hash>.bin` (the first 16 hex digits of the weights'
 * SHA-256), each to a temporary file in the target directory, flushed to disk, then renamed into
 * place, `model.json` last; the previous save's weights file is removed after that. A save that
 * fails at any point leaves the previous model loadable and consistent (or no model).
 *
 * Load reads `model.json` and the weight files its `weightsManifest` names, and checks their total
 * size against the manifest.
 *
 * @param location a directory (save: created if missing) or, for loading, the directory or its
 *   `model.json`; a plain path or a `file://` URL.
 * @throws DropnormValueError for a location with another scheme (`http://`, `indexeddb://`, …); at
 *   load, for a model.json that is not valid JSON or lacks `modelTopology` / `weightsManifest`, and
 *   for weight files whose size differs from the manifest (the message names the files and sizes).
 */
export function fileSystem(location: string): tf.io.IOHandler {
  const target = path.resolve(localPath(location));
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      await saveModel(target, artifacts);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    load: () => loadModel(target),
  };
}

let registered = false;

/**
 * Makes `model.save('file://dir')` and `tf.loadLayersModel('file://dir/model.json')` work.
 * Does nothing when a `file://` handler already exists (e.g. `@tensorflow/tfjs-node`'s).
 */
export function registerFileSystemRouter(): void {
  if (registered) return;
  registered = true;
  if (tf.io.getSaveHandlers(`${SCHEME}probe`).length > 0) return;
  // tfjs routers return null for URLs they do not handle (the IORouter type omits it).
  const router = ((url: string | string[]) => {
    const u = Array.isArray(url) ? url[0] : url;
    return typeof u === 'string' && u.startsWith(SCHEME) ? fileSystem(u) : null;
  }) as unknown as Parameters<typeof tf.io.registerSaveRouter>[0];
  tf.io.registerSaveRouter(router);
  tf.io.registerLoadRouter(router);
}
