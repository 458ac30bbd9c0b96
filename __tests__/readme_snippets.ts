/**
 * The README's executable snippets, for readme.test.ts and dropout_docs.test.ts. A snippet is
 *
 *   <!-- snippet:NAME -->
 *   ```ts
 *   …code…
 *   ```
 *
 *   prints
 *
 *   ```text
 *   …what it prints…
 *   ```
 *
 * A snippet that prints after a promise resolves (`await`, `.then(`: fit, save, mcPredictAsync)
 * runs in a process of its own; the others share one process, each in its own block scope.
 */
import * as fs from 'fs';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..');

export interface ReadmeSnippet {
  name: string;
  code: string;
  /** The text block after "prints". */
  output: string;
  /** Prints after a promise resolves, so it runs in a process of its own. */
  async: boolean;
}

// A block's text never holds a fence, so a malformed snippet cannot swallow the next one.
const BLOCK = '((?:(?!```)[\\s\\S])*)';
const SNIPPET = new RegExp(
  `<!-- snippet:([\\w-]+) -->\n\`\`\`ts\n${BLOCK}\`\`\`\n\nprints\n\n\`\`\`text\n${BLOCK}\`\`\``,
  'g',
);
const MARKER = /<!-- snippet:([\w-]+) -->/g;

/** Every snippet of README.md, in order; throws if a marker is not followed by code and output. */
export function readmeSnippets(): ReadmeSnippet[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const found = [...readme.matchAll(SNIPPET)].map(([, name, code, output]) => ({
    name,
    code,
    output,
    async: /\bawait\b|\.then\(/.test(code),
  }));
  const markers = [...readme.matchAll(MARKER)].map((m) => m[1]);
  const parsed = found.map((s) => s.name);
  if (markers.join() !== parsed.join()) {
    const broken = markers.filter((m) => !parsed.includes(m));
    throw new Error(
      `README snippets ${broken.join(', ')}: expected a \`\`\`ts block, a blank line, "prints", ` +
        'a blank line and a ```text block after the marker.',
    );
  }
  return found;
}
