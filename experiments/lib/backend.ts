/**
 * The backend of an experiment: `pickBackend` from `tfjs-dropnorm/node` (tensorflow > wasm > cpu,
 * or the one asked for), which prints one line naming it, with tfjs's own Node banner ("install
 * our node backend to speed things up") silenced: the harness runs where tfjs-node cannot be
 * installed, and the line printed says which backend runs instead, and why when it is not the
 * fastest.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendName, pickBackend } from 'tfjs-dropnorm/node';

/** The gradient kernels a backend needs to train a conv net. */
export const CONV_TRAINING_KERNELS: readonly string[] = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
];

/**
 * Silences tfjs's console banner and warnings (`tf.enableProdMode()`: tfjs then skips its
 * `console.warn` calls, nothing else), then picks the backend: `requested` ('' for the fastest
 * that loads). `log` receives the one-line announcement (default stderr; `() => {}` in workers).
 */
export async function useBackend(
  requested: string,
  log?: (line: string) => void,
): Promise<BackendName> {
  tf.enableProdMode();
  return pickBackend({ backend: requested || undefined, argv: [], ...(log ? { log } : {}) });
}

/**
 * A backend that can train conv nets: the fastest that loads when it has the
 * {@link CONV_TRAINING_KERNELS} (on wasm, `pickBackend` adds them where the pack provides them),
 * else cpu, with the reason in the announcement. A `requested` backend without them is an error.
 */
export async function useConvTrainingBackend(
  requested: string,
  log: (line: string) => void = (line) => console.error(line),
): Promise<{ name: BackendName; reason: string }> {
  let announcement = '';
  const name = await useBackend(requested, (line) => (announcement = line));
  const missing = CONV_TRAINING_KERNELS.filter((k) => tf.getKernel(k, name) == null);
  if (missing.length === 0) {
    log(announcement);
    const reason = requested ? 'asked for' : 'the fastest backend that trains conv nets';
    return { name, reason };
  }
  const lacks = `the ${name} backend has no ${missing.join(', ')} kernel, so it cannot train conv nets`;
  if (requested) throw new Error(`${lacks}; ask for another backend.`);
  await useBackend('cpu', (line) => log(`${line}: ${lacks}`));
  return { name: 'cpu', reason: lacks };
}
