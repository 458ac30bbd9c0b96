/**
 * The backend of an experiment: `pickBackend` from `tfjs-dropnorm/node` (tensorflow > wasm > cpu,
 * or the one asked for), which prints one line naming it, with tfjs's own Node banner ("install
 * our node backend to speed things up") silenced: the harness runs where tfjs-node cannot be
 * installed, and the line printed says which backend runs instead.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendName, pickBackend } from 'tfjs-dropnorm/node';

/**
 * Silences tfjs's console banner and warnings (`tf.enableProdMode()`: tfjs then skips its
 * `console.warn` calls, nothing else), then picks the backend: `requested` ('' for the fastest
 * that loads). With `training`, only a backend that can train conv nets (pickBackend's
 * `training: true`: on wasm with the pack's gradient kernels). `log` receives the one-line
 * announcement (default stderr; `() => {}` in workers).
 */
export async function useBackend(
  requested: string,
  log?: (line: string) => void,
  training = false,
): Promise<BackendName> {
  tf.enableProdMode();
  return pickBackend({
    backend: (requested || undefined) as BackendName | undefined,
    argv: [],
    training,
    ...(log ? { log } : {}),
  });
}

/**
 * A backend that can train conv nets, and why it was chosen: the fastest that loads and has the
 * gradient kernels (`pickBackend({training: true})`), or `requested` (an error if it lacks them).
 */
export async function useConvTrainingBackend(
  requested: string,
  log?: (line: string) => void,
): Promise<{ name: BackendName; reason: string }> {
  const name = await useBackend(requested, log, true);
  return { name, reason: convTrainingBackendReason(requested) };
}

/**
 * Why {@link useConvTrainingBackend} picks what it picks, for a report: known without picking, so a
 * parent whose pool workers picked the backend need not load one itself.
 */
export function convTrainingBackendReason(requested: string): string {
  return requested ? 'asked for' : 'the fastest backend that trains conv nets';
}
