// README.md and docs/guide/*.md: every synchronous snippet (the dropout family, MC dropout, renorm…)
// runs and prints the text block that follows it. All run in one tsx process, each in its own block
// scope; readme.test.ts runs the asynchronous ones.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ROOT as root, docSnippets } from './readme_snippets';

const IMPORTS = ["import * as tf from '@tensorflow/tfjs';", "import * as dn from 'tfjs-dropnorm';"];

interface Snippet {
  name: string;
  file: string;
  body: string;
  output: string;
}

/** The synchronous snippets (readme.test.ts runs the asynchronous ones), imports checked. */
function snippets(): Snippet[] {
  return docSnippets()
    .filter((s) => !s.async)
    .map(({ name, file, code, output }) => {
      const lines = code.split('\n');
      for (const line of lines.filter((l) => l.startsWith('import ')))
        expect(IMPORTS).toContain(line);
      const body = lines.filter((l) => !l.startsWith('import ')).join('\n');
      return { name, file, body, output };
    });
}

test('every synchronous snippet of the README and the guides runs and prints what the doc says', () => {
  const all = snippets();
  expect(all.map((s) => `${s.file}: ${s.name}`)).toEqual([
    'docs/guide/batch-norm.md: renorm',
    'docs/guide/dropout.md: dropout',
    'docs/guide/dropout.md: spatial',
    'docs/guide/dropout.md: gaussian',
    'docs/guide/dropout.md: alpha',
    'docs/guide/dropout.md: dropconnect',
    'docs/guide/dropout.md: dropblock',
    'docs/guide/dropout.md: droppath',
    'docs/guide/dropout.md: mcpredict',
    'docs/guide/dropout.md: mcclassifier',
    'docs/guide/dropout.md: mcdropout',
    'docs/guide/normalization.md: norms',
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
