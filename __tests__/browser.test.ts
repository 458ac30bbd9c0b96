import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { build } from 'esbuild';

/**
 * A real browser: browser/page.ts is bundled with esbuild (the pack from src/, tfjs from
 * node_modules), served with tfjs-backend-wasm's .wasm binaries from a localhost server (wasm is
 * fetched, which file:// pages cannot), opened in headless Chromium (Debian's /usr/bin/chromium
 * driven by playwright-core, no downloaded browser), and the numbers it computed are read back from
 * the page. A screenshot goes to reports/browser.png. CI installs chromium (.ci/run); elsewhere the
 * test is skipped when no Chromium is installed, and says so.
 */
const root = path.resolve(__dirname, '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) {
  throw new Error(
    `CI must run the browser test: no Chromium at ${CHROMIUM} (.ci/run installs the chromium package).`,
  );
}
const maybe = haveChromium ? test : test.skip;
if (!haveChromium) console.warn(`browser.test.ts skipped: no Chromium at ${CHROMIUM}`);

/** Serves `dir` on 127.0.0.1 (a random port). */
async function serve(dir: string): Promise<http.Server> {
  const types: Record<string, string> = {
    '.html': 'text/html',
    '.js': 'text/javascript',
    '.wasm': 'application/wasm',
  };
  const server = http.createServer((request, response) => {
    const file = path.join(dir, path.basename(new URL(request.url!, 'http://x').pathname));
    if (!fs.existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, {
      'Content-Type': types[path.extname(file)] ?? 'application/octet-stream',
    });
    response.end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

maybe(
  'the pack trains, folds and runs mcPredict and mcPredictAsync in headless Chromium, and trains a CNN on wasm',
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-browser-'));
    await build({
      entryPoints: [path.join(root, 'browser/page.ts')],
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'es2020',
      outfile: path.join(dir, 'page.js'),
      alias: { 'tfjs-dropnorm': path.join(root, 'src/index.ts') },
      logLevel: 'error',
    });
    fs.writeFileSync(
      path.join(dir, 'index.html'),
      '<!doctype html><html><head><meta charset="utf-8"><title>tfjs-dropnorm</title>' +
        '<style>body{font:14px sans-serif;margin:24px}td{padding:4px 12px;border-bottom:1px solid #ddd}</style></head>' +
        '<body><h1>tfjs-dropnorm in the browser</h1><pre id="result" hidden></pre><script src="page.js"></script></body></html>',
    );
    const wasmDir = path.join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
    for (const file of fs.readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) {
      fs.copyFileSync(path.join(wasmDir, file), path.join(dir, file));
    }
    const server = await serve(dir);
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      const { port } = server.address() as AddressInfo;
      await page.goto(`http://127.0.0.1:${port}/index.html`);
      await page.waitForFunction(
        () => document.getElementById('result')!.textContent !== '',
        null,
        { timeout: 90000 },
      );
      const result = JSON.parse((await page.textContent('#result'))!);
      fs.mkdirSync(path.join(root, 'reports'), { recursive: true });
      await page.screenshot({ path: path.join(root, 'reports', 'browser.png'), fullPage: true });
      expect(errors).toEqual([]);
      expect(result.error).toBeUndefined();
      expect(result.userAgent).toMatch(/HeadlessChrome|Chrome/);
      expect(result.backend).toBe('cpu');
      expect(result.lastLoss).toBeLessThan(result.firstLoss);
      expect(result.layers).toEqual([
        'Dense',
        'DropnormBatchNorm',
        'Activation',
        'DropnormDropout',
        'Dense',
      ]);
      expect(result.folded).toBe(1);
      expect(result.foldedLayers).not.toContain('DropnormBatchNorm');
      expect(result.foldDiff).toBeLessThan(1e-4);
      expect(result.mcVariance).toBeGreaterThan(0);
      expect(result.mcAsyncDiff).toBe(0);
      expect(result.mcAsyncTicks).toBeGreaterThan(0);
      // A CNN trains on wasm with the pack's gradient kernels.
      expect(result.wasm.backend).toBe('wasm');
      expect(result.wasm.added).toEqual([
        'Conv2DBackpropFilter',
        'DepthwiseConv2dNativeBackpropFilter',
        'DepthwiseConv2dNativeBackpropInput',
      ]);
      expect(result.wasm.gradientError).toBeLessThan(1e-4);
      expect(result.wasm.lastLoss).toBeLessThan(0.5 * result.wasm.firstLoss);
    } finally {
      await browser.close();
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  180000,
);
