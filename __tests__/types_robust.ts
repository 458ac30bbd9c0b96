/**
 * Types no looser than the runtime (issue 20, "The package"): each `@ts-expect-error` line is a
 * call the runtime rejects, so it must not type-check either; `npx tsc --noEmit -p .` (npm run
 * typecheck) compiles this file and fails if any of them does type-check. Nothing here runs.
 * The run-time side of each line is tested in strict_options.test.ts and node_backend.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { clipOptimizer, layers } from 'tfjs-dropnorm';
import { BackendName, pickBackend } from 'tfjs-dropnorm/node';

export function typeChecks(): void {
  const sgd = tf.train.sgd(0.1);

  // pickBackend: backend is the union of the accepted names.
  void pickBackend({ backend: 'wasm' });
  const name: BackendName = 'cpu';
  void pickBackend({ backend: name });
  // @ts-expect-error 'webgpu' is not a Node backend pickBackend loads
  void pickBackend({ backend: 'webgpu' });
  // @ts-expect-error training is a boolean, not 'yes'
  void pickBackend({ training: 'yes' });

  // clipOptimizer: at most one clipping mode.
  clipOptimizer(sgd, { clipNorm: 1 });
  clipOptimizer(sgd, { globalClipNorm: 1, nonFinite: 'skip' });
  clipOptimizer(sgd, { clipValue: 0.5 });
  clipOptimizer(sgd, {});
  clipOptimizer(sgd, { nonFinite: 'throw' });
  // @ts-expect-error two modes: the runtime rejects it (Keras 3 applies only one)
  clipOptimizer(sgd, { clipNorm: 1, globalClipNorm: 1 });
  // @ts-expect-error two modes
  clipOptimizer(sgd, { clipValue: 1, clipNorm: 1 });
  // @ts-expect-error nonFinite is 'throw' or 'skip'
  clipOptimizer(sgd, { nonFinite: 'ignore' });
  // @ts-expect-error clipNorm is a number
  clipOptimizer(sgd, { clipNorm: '1' });

  // Layer arguments: the types the constructor checks at run time.
  layers.batchNorm({ momentum: null, center: false });
  // @ts-expect-error momentum is a number or null, not a string
  layers.batchNorm({ momentum: '0.9' });
  // @ts-expect-error center is a boolean
  layers.batchNorm({ center: 'no' });
  // @ts-expect-error dropBias is a boolean
  layers.dropConnectDense({ rate: 0.1, units: 2, dropBias: 'yes' });
  // @ts-expect-error the rate is required
  layers.dropout();
}
