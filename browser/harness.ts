/**
 * Node side of the real-browser runs (the browser test and `npm run bench -- --browser`): bundles
 * a page of this folder with esbuild (the pack from src/, tfjs from node_modules), serves it with
 * tfjs-backend-wasm's .wasm binaries on 127.0.0.1 (wasm is fetched, which file:// pages cannot),
 * and opens it in Debian's headless Chromium driven by playwright-core (no downloaded browser).
 *
 * GPU backends run on software GPUs: WebGL2 on ANGLE over SwiftShader, WebGPU on Dawn over
 * SwiftShader's Vulkan. Without `--enable-features=Vulkan --use-vulkan=swiftshader` a WebGPU
 * adapter still appears, but tfjs's synchronous reads return zeros and the device is lost.
 */
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';

const root = path.resolve(__dirname, '..');

/** Where Chromium is looked for (`CHROMIUM_PATH` overrides). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Chromium flags: headless, no network chatter, WebGL2 and WebGPU on SwiftShader. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
];

/** A served folder of bundled pages and a Chromium to open them in. */
export interface BrowserSession {
  browser: Browser;
  /** `http://127.0.0.1:PORT/` */
  origin: string;
  close(): Promise<void>;
}

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

/**
 * Bundles `pages` (file names in browser/, e.g. `page.ts`) into a temporary folder, each with an
 * HTML page of the same base name (`page.html`), copies the wasm binaries, serves the folder and
 * launches Chromium.
 */
export async function openSession(pages: string[]): Promise<BrowserSession> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-browser-'));
  for (const page of pages) {
    const base = path.basename(page, '.ts');
    await build({
      entryPoints: [path.join(root, 'browser', page)],
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'es2020',
      outfile: path.join(dir, `${base}.js`),
      alias: {
        'tfjs-dropnorm': path.join(root, 'src/index.ts'),
        // experiments/lib/timing.ts imports `performance` from perf_hooks; the page has its own.
        perf_hooks: path.join(root, 'browser/perf_hooks.ts'),
      },
      logLevel: 'error',
    });
    fs.writeFileSync(
      path.join(dir, `${base}.html`),
      '<!doctype html><html><head><meta charset="utf-8"><title>tfjs-dropnorm</title>' +
        '<style>body{font:14px sans-serif;margin:24px}td{padding:4px 12px;border-bottom:1px solid #ddd}</style></head>' +
        `<body><h1>tfjs-dropnorm in the browser</h1><pre id="result" hidden></pre><script src="${base}.js"></script></body></html>`,
    );
  }
  const wasmDir = path.join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
  for (const file of fs.readdirSync(wasmDir).filter((f) => f.endsWith('.wasm'))) {
    fs.copyFileSync(path.join(wasmDir, file), path.join(dir, file));
  }
  const server = await serve(dir);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const { port } = server.address() as AddressInfo;
  return {
    browser,
    origin: `http://127.0.0.1:${port}/`,
    async close() {
      await browser.close();
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The outcome of a page that sets `window.__dropnorm = { report } | { error }` (or #result). */
export interface PageRun<T> {
  report?: T;
  error?: string;
  /** Uncaught exceptions of the page. */
  pageErrors: string[];
  /** Its console lines. */
  console: string[];
  seconds: number;
  page: Page;
}

/**
 * Opens `url` (relative to the session) in a new page and waits for `window.__dropnorm`. The page
 * is left open (the caller may screenshot it); close it with `run.page.close()`.
 */
export async function runPage<T>(
  session: BrowserSession,
  url: string,
  timeoutMs: number,
  onConsole?: (line: string) => void,
): Promise<PageRun<T>> {
  const t0 = Date.now();
  const page = await session.browser.newPage();
  const pageErrors: string[] = [];
  const lines: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    lines.push(m.text());
    onConsole?.(m.text());
  });
  await page.goto(session.origin + url);
  // Done when the page sets window.__dropnorm, or (the smoke page, page.ts) fills #result.
  await page.waitForFunction(
    () =>
      (window as { __dropnorm?: unknown }).__dropnorm !== undefined ||
      !!document.getElementById('result')?.textContent,
    null,
    { timeout: timeoutMs, polling: 250 },
  );
  const result = (await page.evaluate(() => (window as { __dropnorm?: unknown }).__dropnorm)) as
    { report?: T; error?: string } | undefined;
  return { ...(result ?? {}), pageErrors, console: lines, seconds: (Date.now() - t0) / 1000, page };
}
