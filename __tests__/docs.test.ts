import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..');

test('npm run docs: the API reference builds, and every exported function, class, interface, type and constant is documented', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-docs-'));
  try {
    // typedoc.json sets treatWarningsAsErrors and requiredToBeDocumented: a missing TSDoc fails here.
    execFileSync(path.join(root, 'node_modules', '.bin', 'typedoc'), ['--out', out], {
      cwd: root,
      stdio: 'pipe',
      timeout: 120000,
    });
    const pages = fs.readdirSync(out, { recursive: true }).map(String);
    for (const page of [
      'index.html',
      'BatchNorm.html',
      'Dropout.html',
      'foldBatchNorm.html',
      'clipOptimizer.html',
      'fileSystem.html',
    ]) {
      expect(pages.some((p) => p.endsWith(page))).toBe(true);
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 120000);
