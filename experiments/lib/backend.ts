/**
 * The backend of an experiment: `pickBackend` from `tfjs-dropnorm/node` (tensorflow > wasm > cpu,
 * or the one asked for), which prints one line naming it, with tfjs's own Node banner ("install
 * our node backend to speed things up") silenced: the harness runs where tfjs-node cannot be
 * installed, and the line it prints says which backend runs instead.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendName, pickBackend } from 'tfjs-dropnorm/node';

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
