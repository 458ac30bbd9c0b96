/**
 * tfjs-dropnorm: dropout variants and batch normalization with unbiased running variance for
 * TensorFlow.js layers models. Browser-safe: this entry uses only tfjs APIs; Node-only helpers
 * (file IO, backend picker) live in `tfjs-dropnorm/node`.
 */
import './register';
import * as layers from './layers';

export { layers };
export { BatchNorm } from './layers/batch_norm';
export type { BatchNormArgs } from './layers/batch_norm';
export type { VarianceCorrection } from './ops/batch_norm';
export * as ops from './ops';
export { DropnormValueError } from './errors';
export { PACK_CLASS_NAMES } from './register';
export {
  clipOptimizer,
  ClipOptimizer,
  gradientNorms,
  firstLastRatio,
  GradientFlow,
  activationStats,
} from './train';
export type {
  ClipOptions,
  NonFiniteAction,
  GradientNormsOptions,
  LayerGradientNorm,
  LossSpec,
  GradientFlowOptions,
  GradientFlowRecord,
  LayerActivationStats,
} from './train';
