import { execFileSync, execSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

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

/** The relative link and image targets of a markdown text (`[t](x)`, `![t](x)`, `<img src="x">`). */
function relativeTargets(markdown: string): string[] {
  // Code spans and fenced blocks hold code, not links.
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  const targets = [
    ...[...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]),
    ...[...prose.matchAll(/<img[^>]*\ssrc="([^"]+)"/g)].map((m) => m[1]),
  ];
  return targets.filter((t) => !/^[a-z]+:/i.test(t) && !t.startsWith('#'));
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

  it('every relative link and image of the README resolves to a file in the repository', () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const targets = relativeTargets(readme);
    expect(targets.length).toBeGreaterThan(10);
    const missing = targets.filter(
      (t) => !fs.existsSync(path.join(root, decodeURIComponent(t.split('#')[0]))),
    );
    expect(missing).toEqual([]);
    // Tracked by git, so they exist on the repository page npm links to (not only here).
    const tracked = new Set(
      execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).trim().split('\n'),
    );
    const untracked = targets
      .map((t) => path.normalize(decodeURIComponent(t.split('#')[0])).replace(/\/$/, ''))
      .filter((t) => !tracked.has(t) && ![...tracked].some((f) => f.startsWith(`${t}/`)));
    expect(untracked).toEqual([]);
  });

  it('source maps carry their sources: the build inlines sourcesContent (src/ is not shipped)', () => {
    const build = JSON.parse(fs.readFileSync(path.join(root, 'tsconfig.build.json'), 'utf8'));
    expect(build.compilerOptions.inlineSources).toBe(true);
    expect(pkg.files).not.toContain('src');
    // package.test.ts checks the built maps (each map's sourcesContent is its source's text).
  });
});
