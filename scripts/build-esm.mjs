// ESM build: one bundled .mjs per entry point (the CommonJS build and the type declarations come
// from tsc). tfjs stays external, so the pack always shares the user's tfjs instance.
import { build } from 'esbuild';

const common = {
  bundle: true,
  format: 'esm',
  target: 'es2020',
  sourcemap: true,
  external: ['@tensorflow/*'],
  logLevel: 'warning',
};

// Browser-safe main entry.
await build({
  ...common,
  entryPoints: ['src/index.ts'],
  outfile: 'dist/esm/index.mjs',
  platform: 'neutral',
});

// Node-only entry: optional backends are loaded with require(), which ES modules get from createRequire.
await build({
  ...common,
  entryPoints: ['src/node/index.ts'],
  outfile: 'dist/esm/node/index.mjs',
  platform: 'node',
  banner: {
    js: "import { createRequire as __createRequire } from 'module';\nconst require = __createRequire(import.meta.url);",
  },
});
