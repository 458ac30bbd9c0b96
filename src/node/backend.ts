/**
 * Picks the tfjs backend for Node programs (examples, benchmarks): the fastest that loads,
 * tensorflow (`@tensorflow/tfjs-node`, optional) > wasm (`@tensorflow/tfjs-backend-wasm`) > cpu,
 * or the one asked for by `--backend NAME` or `TFJS_BACKEND=NAME`.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, optionKeys } from '../errors';

/** The backends a Node program can run on. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
const ORDER: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** Options of {@link pickBackend}. */
export interface PickBackendOptions {
  /** Explicit choice; wins over argv and env. */
  backend?: string;
  /** Command-line arguments searched for `--backend NAME` / `--backend=NAME` (default process.argv). */
  argv?: readonly string[];
  /** Environment searched for TFJS_BACKEND (default process.env). */
  env?: Record<string, string | undefined>;
  /** Where the one-line announcement goes (default console.error, keeping stdout clean). */
  log?: (line: string) => void;
}

/** `--backend NAME` or `--backend=NAME` in argv, if present. */
export function backendFromArgv(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--backend') return argv[i + 1];
    if (argv[i].startsWith('--backend=')) return argv[i].slice('--backend='.length);
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

let announced: string | null = null;

/**
 * Sets and returns the backend: the requested one (an error if it cannot load), else the fastest
 * that loads. Prints `tfjs backend: NAME` once per process.
 */
export async function pickBackend(options: PickBackendOptions = {}): Promise<BackendName> {
  checkOptionKeys(
    'pickBackend',
    options,
    optionKeys<PickBackendOptions>({ backend: true, argv: true, env: true, log: true }),
  );
  const env = options.env ?? process.env;
  const requested =
    options.backend ?? backendFromArgv(options.argv ?? process.argv) ?? env.TFJS_BACKEND;
  if (requested != null && !ORDER.includes(requested as BackendName)) {
    throw new Error(
      `pickBackend: expected backend one of ${ORDER.join(' | ')}, received: backend=${JSON.stringify(requested)}.`,
    );
  }
  const candidates = requested ? [requested as BackendName] : ORDER;
  for (const name of candidates) {
    if (await tryBackend(name)) {
      await tf.ready();
      if (announced !== name) {
        (options.log ?? console.error)(`tfjs backend: ${name} (tfjs ${tf.version.tfjs})`);
        announced = name;
      }
      return name;
    }
  }
  const hint =
    requested === 'tensorflow'
      ? ' Install @tensorflow/tfjs-node (its install downloads libtensorflow, so it needs internet access).'
      : requested === 'wasm'
        ? ' Install @tensorflow/tfjs-backend-wasm.'
        : '';
  throw new Error(`pickBackend: backend '${requested}' could not be loaded.${hint}`);
}
