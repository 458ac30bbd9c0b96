/**
 * Kernels tfjs backends lack, registered on request, never overriding one that exists: the
 * gradient kernels the wasm backend needs to train conv nets.
 */
export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from './wasm_training';
export type { WasmTrainingKernels } from './wasm_training';
