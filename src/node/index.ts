/**
 * `tfjs-dropnorm/node`: the Node-only entry point (uses `fs`). Importing it registers a `file://`
 * save/load router for plain `@tensorflow/tfjs` (unless tfjs-node already provides one).
 */
import { registerFileSystemRouter } from './file_system';

registerFileSystemRouter();

export { fileSystem, registerFileSystemRouter } from './file_system';
export { pickBackend, backendFromArgv, CONV_TRAINING_KERNELS } from './backend';
export type { BackendName, PickBackendOptions } from './backend';
