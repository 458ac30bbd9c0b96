/**
 * A `file://` IO handler for plain `@tensorflow/tfjs` in Node: saves and loads a LayersModel as a
 * directory holding `model.json` and one weights file, which `model.json`'s `weightsManifest` names,
 * so `@tensorflow/tfjs-node`'s file handler loads what this one saves and the reverse. Node-only.
 *
 * Saving is crash-safe: a save that fails at any point (disk full, a killed process) leaves the
 * previous model in the directory loadable and consistent, or no model at all for a first save.
 * Loading checks what it reads: invalid JSON, a missing field, a weights path outside the
 * directory, or weight files whose size or content hash differs from what model.json says are
 * errors naming the file.
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

/** Where a model lives: its directory and its model.json file. */
interface ModelLocation {
  dir: string;
  jsonPath: string;
}

/**
 * The model.json file and directory `target` names, the same for save and load: a path ending in
 * `.json` names the model.json file itself (`dir/my-model.json`: the weights go beside it in
 * `dir/`), as tfjs-node's handler reads it, unless it is an existing directory (a model saved
 * by tfjs-node into `x.json/`), which is then used as a directory; any other path is a directory
 * holding `model.json`.
 */
async function locate(target: string): Promise<ModelLocation> {
  if (target.endsWith('.json')) {
    const stat = await fs.promises.stat(target).catch(() => null);
    if (!stat?.isDirectory()) return { dir: path.dirname(target), jsonPath: target };
  }
  return { dir: target, jsonPath: path.join(target, MODEL_JSON) };
}

// Weights files the pack names (by content: the first 16 hex digits of their SHA-256). Only
// these are ever removed as unreferenced; any other file in the directory is left alone.
const WEIGHTS_NAME = /^weights\.([0-9a-f]{16})\.bin$/;

/** The name of the weights file holding `bytes`. */
function weightsFileName(bytes: Uint8Array): string {
  return `weights.${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}.bin`;
}

// A save in progress announces the weights file it is about to write with a marker file
// `.<weights name>.<pid>.<random>.saving`, created before the weights and removed after its
// model.json is committed; the clean-up of another save never removes a weights file that has a
// marker. A marker older than this is a crashed save's and is ignored (and removed).
const MARKER_SUFFIX = '.saving';
const STALE_MARKER_MS = 60 * 60 * 1000;

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

/** The weight files a model.json references (none if it is absent or not a model.json). */
async function referencedWeights(jsonPath: string): Promise<string[]> {
  try {
    const json = JSON.parse(await fs.promises.readFile(jsonPath, 'utf8')) as tf.io.ModelJSON;
    return (json.weightsManifest ?? []).flatMap((g) => g.paths).filter(isLocalName);
  } catch {
    return []; // nothing there, or nothing a loader could use: nothing to clean up
  }
}

/**
 * Removes the weights files of `dir` that no model.json there references and no save in progress
 * is writing: the pack's `weights.<hash>.bin` files, plus `previous` (what the model.json this
 * save replaced referenced, e.g. tfjs-node's `weights.bin`). Safe against concurrent savers by
 * the order of the reads: (1) list the weights files, (2) list the markers, (3) read every
 * `*.json`. A saver creates its marker before its weights file and removes it only after its
 * model.json is committed, so a weights file seen in (1) is either marked in (2) or referenced by
 * a model.json read in (3) — unless a later save replaced that model.json, and then it is
 * garbage. A concurrent reader that loses its weights file that way re-reads model.json (see
 * {@link loadModel}). Removal is best effort: a leftover file never makes a model inconsistent.
 */
async function removeUnreferenced(dir: string, previous: ReadonlySet<string>): Promise<void> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return;
  }
  const candidates = new Set([...names.filter((n) => WEIGHTS_NAME.test(n)), ...previous]);
  if (candidates.size === 0) return;
  const protectedNames = new Set<string>();
  const now = Date.now();
  for (const marker of (await fs.promises.readdir(dir).catch(() => [] as string[])).filter(
    (n) => n.startsWith('.') && n.endsWith(MARKER_SUFFIX),
  )) {
    const file = path.join(dir, marker);
    const stat = await fs.promises.stat(file).catch(() => null);
    if (stat && now - stat.mtimeMs > STALE_MARKER_MS) {
      await fs.promises.rm(file, { force: true }).catch(() => undefined);
      continue;
    }
    // '.<weights name>.<pid>.<random>.saving' → '<weights name>'
    protectedNames.add(marker.slice(1).split('.').slice(0, 3).join('.'));
  }
  const jsonFiles = (await fs.promises.readdir(dir).catch(() => [] as string[])).filter(
    (n) => n.endsWith('.json') && !n.startsWith('.'),
  );
  for (const json of jsonFiles) {
    for (const p of await referencedWeights(path.join(dir, json))) protectedNames.add(p);
  }
  for (const name of candidates) {
    if (!protectedNames.has(name)) await removeQuietly(path.join(dir, name));
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
  const { dir, jsonPath } = await locate(target);
  const weights = Buffer.from(
    artifacts.weightData
      ? tf.io.CompositeArrayBuffer.join(artifacts.weightData)
      : new ArrayBuffer(0),
  );
  // A new name for new weights: the old model.json keeps pointing at the old file until the new
  // model.json replaces it, so no moment pairs one save's topology with another's weights. Named
  // by content, identical weights get the identical name (saving twice changes nothing).
  const weightsName = weightsFileName(weights);
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
  const marker = path.join(
    dir,
    `.${weightsName}.${process.pid}.${randomBytes(4).toString('hex')}${MARKER_SUFFIX}`,
  );
  let marked = false;
  try {
    await fs.promises.mkdir(dir, { recursive: true });
    for (const p of await referencedWeights(jsonPath)) previous.add(p);
    step = `marking ${weightsName} as being saved`;
    await fs.promises.writeFile(marker, '', { flag: 'wx' });
    marked = true;
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
    if (marked) await fs.promises.rm(marker, { force: true }).catch(() => undefined);
    const error = new Error(
      `${OWNER}: saving the model to ${dir} failed while ${step}: ${(e as Error).message}. ` +
        'The model previously saved there, if any, is unchanged.',
    );
    (error as Error & { cause?: unknown }).cause = e;
    throw error;
  }
  // Committed: the model.json references the weights, so the marker can go. The old weights go
  // only once the new model.json is durably in place, so a crash here at worst leaves an
  // unreferenced weights file behind (the next save removes it).
  await fs.promises.rm(marker, { force: true }).catch(() => undefined);
  if (await syncDirectory(dir)) await removeUnreferenced(dir, previous);
}

/** The text of `model.json`. */
async function readModelText(jsonPath: string): Promise<string> {
  try {
    return await fs.promises.readFile(jsonPath, 'utf8');
  } catch (e) {
    throw new DropnormValueError(`${OWNER}: cannot read ${jsonPath}: ${(e as Error).message}`);
  }
}

/** `model.json`'s parsed content, checked for the fields a LayersModel loader needs. */
function parseModelJSON(text: string, jsonPath: string): tf.io.ModelJSON {
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

/** A weights path the manifest may name: relative, inside the model's directory. */
function checkWeightsPath(p: string, jsonPath: string): void {
  const normalized = path.normalize(p);
  if (
    p === '' ||
    path.isAbsolute(p) ||
    path.win32.isAbsolute(p) ||
    normalized === '..' ||
    normalized.startsWith(`..${path.sep}`) ||
    p.split(/[\\/]/).includes('..')
  ) {
    throw new DropnormValueError(
      `${OWNER}: the weightsManifest of ${jsonPath} names the weights file ${JSON.stringify(p)}, ` +
        'which is not inside the model directory (an absolute path or one with ../). Refused: a ' +
        'model.json may only name files beside it. Save the model again, or fix the path.',
    );
  }
}

/** Thrown when a weights file vanished or changed under a load (a concurrent save). */
class ConcurrentChange extends DropnormValueError {}

async function loadOnce(location: ModelLocation, jsonText: string): Promise<tf.io.ModelArtifacts> {
  const { dir, jsonPath } = location;
  const modelJSON = parseModelJSON(jsonText, jsonPath);
  for (const group of modelJSON.weightsManifest) {
    for (const p of group.paths) checkWeightsPath(p, jsonPath);
  }
  return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
    const specs: tf.io.WeightsManifestEntry[] = [];
    const buffers: ArrayBuffer[] = [];
    for (const group of manifest) {
      specs.push(...group.weights);
      const files: Array<{ file: string; bytes: number }> = [];
      let corrupted: { file: string; hash: string; actual: string } | undefined;
      for (const p of group.paths) {
        const file = path.join(dir, p);
        let b: Buffer;
        try {
          b = await fs.promises.readFile(file);
        } catch (e) {
          const Err =
            (e as { code?: string }).code === 'ENOENT' ? ConcurrentChange : DropnormValueError;
          throw new Err(
            `${OWNER}: cannot read ${file}, a weights file of ${jsonPath}: ${(e as Error).message}`,
          );
        }
        // The pack names a weights file by its content (checked after the sizes, which say more).
        const named = WEIGHTS_NAME.exec(path.basename(p));
        if (named && weightsFileName(b) !== path.basename(p)) {
          corrupted ??= { file, hash: named[1], actual: weightsFileName(b) };
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
      if (corrupted) {
        // A same-size corruption would otherwise load and predict NaN.
        throw new ConcurrentChange(
          `${OWNER}: the content of ${corrupted.file} does not match its name: its SHA-256 ` +
            `begins ${corrupted.actual.slice('weights.'.length, -'.bin'.length)}, not ` +
            `${corrupted.hash} (the pack names a weights file by the hash of its content). The ` +
            'file is corrupted; save the model again.',
        );
      }
    }
    return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
  });
}

// A load whose weights file vanished or changed re-reads model.json this many times at most.
const LOAD_ATTEMPTS = 3;

/**
 * Loads the model at `target`. A weights file that is missing or does not match its name while
 * model.json changed in the meantime is a concurrent save (which replaced model.json and removed
 * the old weights): the load starts again from the new model.json. Otherwise the error stands.
 */
async function loadModel(target: string): Promise<tf.io.ModelArtifacts> {
  const location = await locate(target);
  let text = await readModelText(location.jsonPath);
  for (let attempt = 1; ; attempt++) {
    try {
      return await loadOnce(location, text);
    } catch (e) {
      if (!(e instanceof ConcurrentChange) || attempt >= LOAD_ATTEMPTS) throw e;
      const again = await readModelText(location.jsonPath);
      if (again === text) throw e;
      text = again;
    }
  }
}

/**
 * An IOHandler for `model.save(handler)` and `tf.loadLayersModel(handler)`. It takes one location
 * and no options (there is nothing to configure): anything but a non-empty string is an error.
 *
 * Save writes `model.json` and `weights.<hash>.bin` (the first 16 hex digits of the weights'
 * SHA-256), each to a temporary file in the target directory, flushed to disk, then renamed into
 * place, `model.json` last. After that, the weights files no model.json of the directory
 * references are removed (the previous save's, and any left by interrupted or concurrent saves),
 * except those a save in progress announced with its marker file. A save that fails at any point
 * leaves the previous model loadable and consistent (or no model).
 *
 * Load reads `model.json` and the weight files its `weightsManifest` names, which must lie beside
 * it (no `../`, no absolute path), checks their total size against the manifest and a
 * `weights.<hash>.bin` file's content against its hash; a weights file that a concurrent save
 * removed or replaced makes it re-read model.json.
 *
 * @param location a directory (save: created if missing), or a path ending in `.json`, which
 *   names the model.json file itself (its weights beside it; tfjs-node's handler loads such a
 *   path the same way), unless it is an existing directory; a plain path or a `file://` URL.
 *   Save and load of one location use the same files.
 * @throws DropnormValueError for a location with another scheme (`http://`, `indexeddb://`, …); at
 *   load, for a model.json that is not valid JSON or lacks `modelTopology` / `weightsManifest`, a
 *   weights path outside the directory, weight files whose size differs from the manifest (the
 *   message names the files and sizes) or whose content does not match its hash.
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
