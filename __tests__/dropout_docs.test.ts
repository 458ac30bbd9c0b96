// README.md, the sections of the dropout family: every snippet runs and prints the
// text block that follows it. All snippets run in one tsx process, each in its own block scope.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ROOT as root, readmeSnippets } from './readme_snippets';

const IMPORTS = ["import * as tf from '@tensorflow/tfjs';", "import * as dn from 'tfjs-dropnorm';"];

interface Snippet {
  name: string;
  body: string;
  output: string;
}

/** The synchronous snippets (readme.test.ts runs the asynchronous ones), imports checked. */
function snippets(): Snippet[] {
  return readmeSnippets()
    .filter((s) => !s.async)
    .map(({ name, code, output }) => {
      const lines = code.split('\n');
      for (const line of lines.filter((l) => l.startsWith('import ')))
        expect(IMPORTS).toContain(line);
      const body = lines.filter((l) => !l.startsWith('import ')).join('\n');
      return { name, body, output };
    });
}

test('every dropout snippet of the README runs and prints what the doc says', () => {
  const all = snippets();
  expect(all.map((s) => s.name)).toEqual([
    'renorm',
    'norms',
    'dropout',
    'spatial',
    'gaussian',
    'alpha',
    'dropconnect',
    'dropblock',
    'droppath',
    'mcpredict',
    'mcclassifier',
    'mcdropout',
  ]);
  const program = [
    ...IMPORTS,
    "tf.env().set('IS_TEST', true);",
    ...all.map((s) => `console.log('@@${s.name}');\n{\n${s.body}\n}`),
  ].join('\n');
  const file = path.join(root, '.tmp', `docs-dropout-${process.pid}.ts`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, program);
  let stdout: string;
  try {
    stdout = execFileSync(path.join(root, 'node_modules', '.bin', 'tsx'), [file], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60000,
    });
  } finally {
    fs.rmSync(file, { force: true });
  }
  const printed = new Map<string, string>();
  for (const part of stdout.split('@@').slice(1)) {
    const newline = part.indexOf('\n');
    printed.set(part.slice(0, newline), part.slice(newline + 1));
  }
  if (process.env.PRINT_DOC_OUTPUTS) console.log(stdout);
  for (const s of all)
    expect({ name: s.name, output: printed.get(s.name) }).toEqual({
      name: s.name,
      output: s.output,
    });
});
