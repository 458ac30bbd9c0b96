/**
 * A `file://` IO handler for plain `@tensorflow/tfjs` in Node: saves and loads a LayersModel as a
 * directory holding `model.json` and `weights.bin`, the layout `@tensorflow/tfjs-node` writes and
 * reads, so models move freely between the two. Node-only (uses `fs`).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';
const SCHEME = 'file://';

function stripScheme(p: string): string {
  return p.startsWith(SCHEME) ? p.slice(SCHEME.length) : p;
}

/**
 * An IOHandler for `model.save(handler)` and `tf.loadLayersModel(handler)`. It takes one location
 * and no options (there is nothing to configure): anything but a non-empty string is an error.
 * @param location a directory (save: created if missing) or, for loading, the directory or its
 *   `model.json`; a `file://` prefix is accepted.
 */
export function fileSystem(location: string): tf.io.IOHandler {
  if (typeof location !== 'string' || location === '') {
    throw invalidArgument(
      'fileSystem',
      'location',
      location,
      "to be a directory path or a 'file://' URL (a non-empty string)",
      "fileSystem takes no options; for tfjs-node's [model.json, weights.bin] form pass the directory.",
    );
  }
  const target = path.resolve(stripScheme(location));
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new Error('fileSystem: saving a binary (graph) model topology is not supported.');
      }
      const dir = target.endsWith('.json') ? path.dirname(target) : target;
      await fs.promises.mkdir(dir, { recursive: true });
      const weightsManifest: tf.io.WeightsManifestConfig = [
        { paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] },
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
      const weightData = artifacts.weightData
        ? tf.io.CompositeArrayBuffer.join(artifacts.weightData)
        : new ArrayBuffer(0);
      await fs.promises.writeFile(path.join(dir, WEIGHTS_BIN), Buffer.from(weightData));
      await fs.promises.writeFile(path.join(dir, MODEL_JSON), JSON.stringify(modelJSON));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      const jsonPath = target.endsWith('.json') ? target : path.join(target, MODEL_JSON);
      let text: string;
      try {
        text = await fs.promises.readFile(jsonPath, 'utf8');
      } catch (e) {
        throw new Error(`fileSystem: cannot read ${jsonPath}: ${(e as Error).message}`);
      }
      const modelJSON = JSON.parse(text) as tf.io.ModelJSON;
      const dir = path.dirname(jsonPath);
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const b = await fs.promises.readFile(path.join(dir, p));
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
          }
        }
        return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
      });
    },
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
