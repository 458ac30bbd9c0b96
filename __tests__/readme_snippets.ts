/**
 * The executable snippets of the docs — README.md, then docs/guide/*.md in name order — for
 * readme.test.ts (the asynchronous ones) and dropout_docs.test.ts (the others). A snippet is
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

/** The markdown files whose snippets run: README.md, then docs/guide/*.md by name. */
export function docFiles(): string[] {
  const guides = path.join(ROOT, 'docs', 'guide');
  const names = fs.existsSync(guides)
    ? fs
        .readdirSync(guides)
        .filter((f) => f.endsWith('.md'))
        .sort()
    : [];
  return ['README.md', ...names.map((f) => `docs/guide/${f}`)];
}

export interface ReadmeSnippet {
  name: string;
  /** The markdown file it is in, relative to the repository (`README.md`, `docs/guide/x.md`). */
  file: string;
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

/** Every snippet of the markdown `file` (relative to the repository), in order; throws if a
 * marker is not followed by code and output. */
export function markdownSnippets(file: string): ReadmeSnippet[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const found = [...text.matchAll(SNIPPET)].map(([, name, code, output]) => ({
    name,
    file,
    code,
    output,
    async: /\bawait\b|\.then\(/.test(code),
  }));
  const markers = [...text.matchAll(MARKER)].map((m) => m[1]);
  const parsed = found.map((s) => s.name);
  if (markers.join() !== parsed.join()) {
    const broken = markers.filter((m) => !parsed.includes(m));
    throw new Error(
      `${file} snippets ${broken.join(', ')}: expected a \`\`\`ts block, a blank line, "prints", ` +
        'a blank line and a ```text block after the marker.',
    );
  }
  return found;
}

/** Every snippet of README.md, in order. */
export function readmeSnippets(): ReadmeSnippet[] {
  return markdownSnippets('README.md');
}

/**
 * Every snippet of README.md and the guides ({@link docFiles}), in that order; throws if two share
 * a name (the tests report snippets by name).
 */
export function docSnippets(): ReadmeSnippet[] {
  const all = docFiles().flatMap(markdownSnippets);
  const seen = new Map<string, string>();
  for (const s of all) {
    if (seen.has(s.name)) {
      throw new Error(
        `snippet:${s.name} is in both ${seen.get(s.name)} and ${s.file}: rename one.`,
      );
    }
    seen.set(s.name, s.file);
  }
  return all;
}
