import { execFileSync, execSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { docFiles } from './readme_snippets';

/**
 * The published package is complete (issue 20, "The package"): the Apache-2.0 text ships, npm's
 * page can resolve the README's relative links (they resolve in the repository, and `repository`
 * says where that is), and the source maps carry their sources (the `.ts` files are not shipped).
 * Cheap checks only: `npm pack --dry-run` without the build; package.test.ts checks the real build.
 */
const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

/** The files `npm pack` would put in the tarball (no build, no lifecycle scripts). */
function packedFiles(): string[] {
  const out = execSync('npm pack --dry-run --json --ignore-scripts', {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return (JSON.parse(out)[0].files as { path: string }[]).map((f) => f.path);
}

/** Markdown without its fenced code blocks and code spans (they hold code, not links or headings). */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/**
 * The relative link and image targets of a markdown text (`[t](x)`, `![t](x)`, `<img src="x">`),
 * same-page anchors (`#x`) included; absolute URLs (`https:`, `mailto:`) left out.
 */
function relativeTargets(markdown: string): string[] {
  const text = prose(markdown);
  const targets = [
    ...[...text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]),
    ...[...text.matchAll(/<img[^>]*\ssrc="([^"]+)"/g)].map((m) => m[1]),
  ];
  return targets.filter((t) => !/^[a-z]+:/i.test(t));
}

/**
 * The anchors GitHub (and npm) give a markdown file's headings: lower case, punctuation other than
 * `-` and `_` dropped, spaces to `-`, and `-1`, `-2`, … on repeats (github-slugger); plus explicit
 * `<a id="…">` / `<a name="…">`.
 */
function anchors(markdown: string): Set<string> {
  const text = markdown.replace(/^```[\s\S]*?^```/gm, '');
  const seen = new Map<string, number>();
  const found = new Set<string>();
  for (const [, heading] of text.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const slug = heading
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text
      .replace(/<[^>]+>/g, '')
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    found.add(n === 0 ? slug : `${slug}-${n}`);
  }
  for (const [, id] of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) found.add(id);
  return found;
}

describe('the package ships complete', () => {
  it('LICENSE is the Apache-2.0 text package.json names, and the tarball contains it', () => {
    expect(pkg.license).toBe('Apache-2.0');
    const text = fs.readFileSync(path.join(root, 'LICENSE'), 'utf8');
    expect(text).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(text).toMatch(/END OF TERMS AND CONDITIONS/);
    expect(pkg.files).toContain('LICENSE');
    expect(packedFiles()).toContain('LICENSE');
  });

  it('repository, homepage and bugs name one home (npm rewrites README links against it)', () => {
    const home = 'https://github.com/tfjs-dropnorm/tfjs-dropnorm';
    expect(pkg.repository).toEqual({ type: 'git', url: `git+${home}.git` });
    expect(pkg.homepage).toBe(`${home}#readme`);
    expect(pkg.bugs).toEqual({ url: `${home}/issues` });
  });

  it('the README links many files (charts, examples, guides), and each guide is linked from it', () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    expect(relativeTargets(readme).length).toBeGreaterThan(10);
    const linked = new Set(relativeTargets(readme).map((t) => path.normalize(t.split('#')[0])));
    const guides = docFiles().filter((f) => f !== 'README.md');
    expect(guides.filter((g) => !linked.has(g))).toEqual([]);
  });

  const tracked = new Set(
    execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).trim().split('\n'),
  );
  test.each(docFiles())(
    'every relative link and image of %s resolves to a tracked file, and every #anchor to a heading',
    (file) => {
      const text = fs.readFileSync(path.join(root, file), 'utf8');
      const broken: string[] = [];
      for (const target of relativeTargets(text)) {
        const [link, anchor] = target.split('#');
        // Relative to the file's folder; tracked by git, so it exists on the repository page npm
        // links to (not only in this checkout).
        const resolved = link
          ? path
              .normalize(path.join(path.dirname(file), decodeURIComponent(link)))
              .replace(/\/$/, '')
          : file;
        const exists =
          !link || tracked.has(resolved) || [...tracked].some((f) => f.startsWith(`${resolved}/`));
        if (!exists) {
          broken.push(`${target}: no tracked file ${resolved}`);
        } else if (anchor !== undefined && resolved.endsWith('.md')) {
          const headings = anchors(fs.readFileSync(path.join(root, resolved), 'utf8'));
          if (!headings.has(decodeURIComponent(anchor))) {
            broken.push(`${target}: no heading #${anchor} in ${resolved}`);
          }
        }
      }
      expect(broken).toEqual([]);
    },
  );

  it('source maps carry their sources: the build inlines sourcesContent (src/ is not shipped)', () => {
    const build = JSON.parse(fs.readFileSync(path.join(root, 'tsconfig.build.json'), 'utf8'));
    expect(build.compilerOptions.inlineSources).toBe(true);
    expect(pkg.files).not.toContain('src');
    // package.test.ts checks the built maps (each map's sourcesContent is its source's text).
  });
});
