import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '..');

/** The fenced block after `<!-- snippet:NAME -->`, and the `text` block after the word "prints". */
function snippet(name: string): { code: string; output: string } {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const start = readme.indexOf(`<!-- snippet:${name} -->`);
  expect(start).toBeGreaterThanOrEqual(0);
  const rest = readme.slice(start);
  const code = /```ts\n([\s\S]*?)```/.exec(rest)![1];
  const output = /prints\n\n```text\n([\s\S]*?)```/.exec(rest)![1];
  return { code, output };
}

describe('README', () => {
  // These print after a promise resolves (model.fit, mcPredictAsync), so each runs in a process
  // of its own.
  test.each(['usage', 'batchnorm', 'renorm', 'training', 'wasm-training', 'mcasync', 'schedule'])(
    'the %s snippet runs as shown and prints what the README says',
    (name) => {
      const { code, output } = snippet(name);
      const file = path.join(root, '.tmp', `readme-snippet-${name}-${process.pid}.ts`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      // Inside the repo so tsx maps 'tfjs-dropnorm' to src/ (tsconfig paths), as a user's import.
      fs.writeFileSync(file, code);
      try {
        const stdout = execFileSync(path.join(root, 'node_modules', '.bin', 'tsx'), [file], {
          cwd: root,
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
