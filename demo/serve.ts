/**
 * `npm run demo [-- --port N] [-- --out DIR]`: builds the demo (build.ts) and serves it on
 * http://127.0.0.1:PORT/ (default 8080, the next free port if taken), printing the URL. The .wasm
 * binaries must be served over http(s) with their MIME type, which file:// pages cannot do.
 */
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as path from 'path';
import { buildDemo, outDir } from './build';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
};

/** Serves the files of `dir` (no sub-folders) on 127.0.0.1:`port` (0: any free port). */
export async function serveDirectory(dir: string, port: number): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const name = path.basename(new URL(request.url ?? '/', 'http://x').pathname) || 'index.html';
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    });
    response.end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}

async function main(argv: string[]): Promise<void> {
  const out = outDir(argv);
  const i = argv.indexOf('--port');
  const port = i >= 0 ? Number(argv[i + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`demo: expected --port an integer in [0, 65535], received ${argv[i + 1]}`);
  }
  await buildDemo(out);
  const server = await serveDirectory(out, port).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EADDRINUSE' || i >= 0) throw e;
    return serveDirectory(out, 0);
  });
  const { port: actual } = server.address() as AddressInfo;
  console.log(`tfjs-dropnorm demo: http://127.0.0.1:${actual}/  (Ctrl-C to stop)`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
