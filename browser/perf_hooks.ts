/** The browser's `performance`, for modules written against Node's `perf_hooks` (bundled pages). */
export const performance = globalThis.performance;
