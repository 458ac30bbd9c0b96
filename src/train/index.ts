/** Training helpers: gradient clipping, gradient-norm probes and the gradient-flow callback. */
export { clipOptimizer, ClipOptimizer } from './clip_optimizer';
export type { ClipMode, ClipOptions, NonFiniteAction } from './clip_optimizer';
export { gradientNorms, firstLastRatio } from './gradient_norms';
export type { GradientNormsOptions, LayerGradientNorm, LossSpec } from './gradient_norms';
export { GradientFlow, activationStats } from './gradient_flow';
export type {
  GradientFlowOptions,
  GradientFlowRecord,
  LayerActivationStats,
} from './gradient_flow';
export { l2Norm, globalNorm } from './norms';
export { DropRateScheduler, dropPathRates } from './schedules';
export type {
  DropRateFunctionOptions,
  DropRateRampOptions,
  DropRateSchedulerCommonOptions,
  DropRateSchedulerOptions,
  ScheduleUnit,
} from './schedules';
