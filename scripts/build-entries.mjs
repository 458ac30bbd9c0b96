// The package entry points, written after `tsc -p tsconfig.build.json` has emitted the CommonJS build
// (dist/cjs) and its declarations (dist/types). There is ONE copy of the code, the CommonJS build:
//
// - dist/cjs/main.js, dist/cjs/node/main.js (`require`): a process-wide singleton over the tsc
//   output. The first copy of this version loaded (by any path: two node_modules folders, a
//   symlink under --preserve-symlinks, two bundles on a page) stores its exports under a global
//   symbol; a second copy hands out those instead of running its own modules, so classes are
//   registered once, seed streams and every other module state exist once, and `instanceof` holds
//   across both. (A different version is a different key: its register.ts then refuses the
//   clashing class names with an error saying so, rather than mixing two versions' layers.)
// - dist/esm/index.mjs, dist/esm/node/index.mjs (`import`): thin wrappers that import main.js and
//   re-export each name explicitly (plus the whole namespace as the default export, as Node gives
//   for `import x from` a CommonJS package), with .d.mts declarations that say exactly that. This is
//   Node's documented remedy for the dual-package hazard: importing and requiring in one process
//   reach the same module instance.
import { createRequire } from 'module';
import * as fs from 'fs';
import * as path from 'path';
import { stdout } from 'process';
import { fileURLToPath } from 'url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

/** `dist/cjs/<dir>/index.js` → main.js (singleton), `dist/esm/<dir>/index.mjs` + `.d.mts`. */
function entry(dir, key) {
  const up = dir ? '../' : '';
  const cjsDir = path.join(root, 'dist/cjs', dir);
  const esmDir = path.join(root, 'dist/esm', dir);
  const names = Object.keys(require(path.join(cjsDir, 'index.js')))
    .filter((n) => n !== '__esModule' && n !== 'default')
    .sort();
  for (const n of names) {
    if (!/^[A-Za-z_$][\w$]*$/.test(n)) throw new Error(`build-entries: export name '${n}'`);
  }
  // Each name spelled out (the getter form tsc emits), so tools that read the file without running
  // it (TypeScript, cjs-module-lexer, @arethetypeswrong/cli) see exactly what the declarations say.
  fs.writeFileSync(
    path.join(cjsDir, 'main.js'),
    `'use strict';
// One copy per process: see scripts/build-entries.mjs.
const key = Symbol.for(${JSON.stringify(`tfjs-dropnorm@${version}${key}`)});
const pack = globalThis[key] || (globalThis[key] = require('./index.js'));
Object.defineProperty(exports, '__esModule', { value: true });
${names.map((n) => `Object.defineProperty(exports, '${n}', { enumerable: true, get: function () { return pack.${n}; } });`).join('\n')}
exports.default = pack.default;
`,
  );
  fs.mkdirSync(esmDir, { recursive: true });
  const cjs = `${up}../cjs/${dir ? dir + '/' : ''}main.js`;
  fs.writeFileSync(
    path.join(esmDir, 'index.mjs'),
    `// The ES module face of the CommonJS build (one copy of the code): see scripts/build-entries.mjs.
import pack from '${cjs}';
export const {\n  ${names.join(',\n  ')},\n} = pack;
export default pack;
`,
  );
  const types = `${up}../types/${dir ? dir + '/' : ''}index.js`;
  fs.writeFileSync(
    path.join(esmDir, 'index.d.mts'),
    `export * from '${types}';
import * as pack from '${types}';
export default pack;
`,
  );
  return names.length;
}

const main = entry('', '');
const node = entry('node', '/node');
stdout.write(`build-entries: ${main} + ${node} named exports (tfjs-dropnorm@${version})\n`);
