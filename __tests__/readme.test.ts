import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ROOT, docSnippets } from './readme_snippets';

describe('README and the guides (docs/guide)', () => {
  // These print after a promise resolves (model.fit, mcPredictAsync), so each runs in a process
  // of its own; dropout_docs.test.ts runs the others together.
  const asynchronous = docSnippets().filter((s) => s.async);

  it('has the asynchronous snippets this test runs', () => {
    expect(asynchronous.map((s) => `${s.file}: ${s.name}`)).toEqual([
      'README.md: usage',
      'docs/guide/backends.md: wasm-training',
      'docs/guide/batch-norm.md: batchnorm',
      'docs/guide/dropout.md: mcasync',
      'docs/guide/folding-and-export.md: save-for-inference',
      'docs/guide/training-tools.md: training',
      'docs/guide/training-tools.md: schedule',
    ]);
  });

  test.each(asynchronous.map((s) => [s.name, s.file, s] as const))(
    'the %s snippet of %s runs as shown and prints what the doc says',
    (name, _file, { code, output }) => {
      const file = path.join(ROOT, '.tmp', `readme-snippet-${name}-${process.pid}.ts`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      // Inside the repo so tsx maps 'tfjs-dropnorm' to src/ (tsconfig paths), as a user's import.
      fs.writeFileSync(file, code);
      try {
        const stdout = execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [file], {
          cwd: ROOT,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
          timeout: 60000,
        });
        expect(stdout).toBe(output);
      } finally {
        fs.rmSync(file, { force: true });
      }
    },
  );
});
