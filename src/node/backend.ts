/**
 * Picks the tfjs backend for Node programs (examples, benchmarks): the fastest that loads,
 * tensorflow (`@tensorflow/tfjs-node`, optional) > wasm (`@tensorflow/tfjs-backend-wasm`) > cpu,
 * or the one asked for by `--backend NAME` or `TFJS_BACKEND=NAME`. On wasm it registers the
 * pack's conv-net gradient kernels, so every backend it returns can train conv nets.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, invalidArgument, optionSpec } from '../errors';
import { registerWasmTrainingKernels } from '../kernels';

/** The backends a Node program can run on. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
const ORDER: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** Options of {@link pickBackend}. */
export interface PickBackendOptions {
  /** Explicit choice; wins over argv and env (those are strings, checked at run time). */
  backend?: BackendName;
  /** Command-line arguments searched for `--backend NAME` / `--backend=NAME` (default process.argv). */
  argv?: readonly string[];
  /** Environment searched for TFJS_BACKEND (default process.env). */
  env?: Record<string, string | undefined>;
  /** Where the one-line announcement goes (default console.error, keeping stdout clean). */
  log?: (line: string) => void;
  /**
   * The program trains conv nets: accept only a backend that has every kernel of
   * {@link CONV_TRAINING_KERNELS} (after the pack's wasm kernels are registered). In the default
   * order a backend lacking one is skipped; a requested one is an error naming what it lacks.
   * Default false (wasm gets the pack's kernels either way).
   */
  training?: boolean;
}

/**
 * The gradient kernels a conv-net train step needs beyond a dense net's: conv2d and depthwise
 * (and so separable) convolution w.r.t. input and filter, max and average pooling.
 */
export const CONV_TRAINING_KERNELS: readonly string[] = [
  'Conv2DBackpropInput',
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'MaxPoolGrad',
  'AvgPoolGrad',
];

/**
 * `--backend NAME` or `--backend=NAME` in argv, if present. A bare `--backend` (last, or followed
 * by another `--option`) or an empty `--backend=` is an error, not "no choice": the program would
 * otherwise silently run on another backend than the one its command line asks for.
 */
export function backendFromArgv(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    let name: string | undefined;
    if (argv[i] === '--backend') name = argv[i + 1];
    else if (argv[i].startsWith('--backend=')) name = argv[i].slice('--backend='.length);
    else continue;
    if (name == null || name === '' || name.startsWith('--')) {
      throw invalidArgument(
        'pickBackend',
        '--backend',
        argv[i],
        `to be followed by a backend name (${ORDER.join(', ')})`,
        'Write e.g. --backend wasm or --backend=cpu, or leave the flag out for the fastest.',
      );
    }
    return name;
  }
  return undefined;
}

// A computed specifier keeps bundlers and tsc from resolving optional packages.
function optionalRequire(name: string): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(name);
    return true;
  } catch {
    return false;
  }
}

async function tryBackend(name: BackendName): Promise<boolean> {
  if (name === 'tensorflow' && !optionalRequire('@tensorflow/tfjs-node')) return false;
  if (name === 'wasm' && !optionalRequire('@tensorflow/tfjs-backend-wasm')) return false;
  if (tf.findBackendFactory(name) == null) return false;
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/** On wasm, the pack's kernels: registered, or why not (a wasm without their building blocks). */
function addWasmKernels(): { added: string[]; failure?: string } {
  try {
    return { added: registerWasmTrainingKernels().added };
  } catch (e) {
    return { added: [], failure: (e as Error).message };
  }
}

let announced: string | null = null;

/**
 * Sets and returns the backend: the requested one (an error if it cannot load), else the fastest
 * that loads. On wasm it calls `registerWasmTrainingKernels()` (the gradient kernels
 * tfjs-backend-wasm lacks to train conv nets). Prints `tfjs backend: NAME (…)` once per process,
 * with the kernels the pack added.
 */
export async function pickBackend(options: PickBackendOptions = {}): Promise<BackendName> {
  checkOptionKeys(
    'pickBackend',
    options,
    optionSpec<PickBackendOptions>({
      backend: 'string',
      argv: 'array',
      env: 'object',
      log: 'function',
      training: 'boolean',
    }),
  );
  const env = options.env ?? process.env;
  const requested =
    options.backend ?? backendFromArgv(options.argv ?? process.argv) ?? env.TFJS_BACKEND;
  if (requested != null && !ORDER.includes(requested as BackendName)) {
    throw invalidArgument(
      'pickBackend',
      'backend',
      requested,
      `to be one of ${ORDER.map((b) => `'${b}'`).join(', ')}`,
      'It comes from the backend option, --backend NAME, or TFJS_BACKEND, in that order.',
    );
  }
  const candidates = requested ? [requested as BackendName] : ORDER;
  const lacking: string[] = [];
  for (const name of candidates) {
    if (await tryBackend(name)) {
      await tf.ready();
      const kernels = name === 'wasm' ? addWasmKernels() : { added: [] };
      const missing = CONV_TRAINING_KERNELS.filter((k) => tf.getKernel(k, name) == null);
      if (options.training && missing.length > 0) {
        const lacks = `lacks ${missing.join(', ')}${kernels.failure ? ` (${kernels.failure})` : ''}`;
        if (requested) {
          throw new Error(
            `pickBackend: backend '${name}' cannot train conv nets: it ${lacks}. Use another ` +
              'backend, or drop training: true for dense nets.',
          );
        }
        lacking.push(`'${name}' ${lacks}`);
        continue;
      }
      const line =
        `tfjs backend: ${name} (tfjs ${tf.version.tfjs}` +
        (kernels.added.length > 0
          ? `; conv-net training kernels added by tfjs-dropnorm: ${kernels.added.join(', ')}`
          : '') +
        (kernels.failure ? `; conv-net training kernels not added: ${kernels.failure}` : '') +
        ')';
      if (announced !== line) {
        (options.log ?? console.error)(line);
        announced = line;
      }
      return name;
    }
  }
  if (lacking.length > 0) {
    throw new Error(
      `pickBackend: no backend that loads can train conv nets: ${lacking.join('; ')}.`,
    );
  }
  const hint =
    requested === 'tensorflow'
      ? ' Install @tensorflow/tfjs-node (its install downloads libtensorflow, so it needs internet access).'
      : requested === 'wasm'
        ? ' Install @tensorflow/tfjs-backend-wasm.'
        : '';
  throw new Error(`pickBackend: backend '${requested}' could not be loaded.${hint}`);
}
