/**
 * `tfjs-dropnorm/node`: the Node-only entry point (uses `fs`). Importing it registers a `file://`
 * save/load router for plain `@tensorflow/tfjs` (unless tfjs-node already provides one).
 */
import { registerFileSystemRouter } from './file_system';
import * as dropnormNode from './index';

registerFileSystemRouter();

export { fileSystem, registerFileSystemRouter } from './file_system';
export { pickBackend, backendFromArgv, CONV_TRAINING_KERNELS } from './backend';
export type { BackendName, PickBackendOptions } from './backend';

/** The whole `tfjs-dropnorm/node` namespace, also as the default export (see the main entry). */
const namespace: typeof import('./index') = dropnormNode;
export default namespace;
