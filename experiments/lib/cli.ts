/**
 * Flags for the experiments and benches: Node's `util.parseArgs`, typed by the defaults.
 *
 * ```ts
 * const args = parseArgs({ depth: 20, quick: false, out: 'reports/x', backend: '' });
 * // --depth 8 | --depth=8 | --quick | --no-quick | --out=/tmp/r | --max-epochs 5
 * ```
 * Flags are the keys of `defaults` in kebab-case (`maxEpochs` ↔ `--max-epochs`). A key's type is its default's: numbers must parse as finite numbers,
 * booleans take no value (`--no-x` sets false), strings take a value. An unknown flag, a missing
 * value or a bad number throws, naming the flag and listing the known ones; `--help` prints every
 * flag with its default and exits.
 */
import { parseArgs as nodeParseArgs } from 'util';

/** What a flag can hold. */
export type FlagValue = number | string | boolean;

/** Options of {@link parseArgs}. */
export interface ParseArgsOptions {
  /** Printed by `--help` before the flag list; `--help` then exits the process with code 0. */
  usage?: string;
  /** Where `--help` prints (default console.log). */
  log?: (text: string) => void;
}

/** A key as its flag is written on the command line: `maxEpochs` → `max-epochs`. */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** One line per flag with its default, for `--help`. */
export function helpText<T extends Record<string, FlagValue>>(defaults: T, usage = ''): string {
  const lines = Object.entries(defaults).map(([key, value]) => {
    const kind = typeof value === 'boolean' ? '' : ` <${typeof value}>`;
    return `  --${kebab(key)}${kind}  (default: ${JSON.stringify(value)})`;
  });
  return [usage, 'Flags:', ...lines].filter((l) => l !== '').join('\n');
}

/** Parses `argv` (default `process.argv.slice(2)`) against `defaults`; see the module doc. */
export function parseArgs<T extends Record<string, FlagValue>>(
  defaults: T,
  argv: readonly string[] = process.argv.slice(2),
  options: ParseArgsOptions = {},
): T {
  // Each key as its kebab-case flag, booleans also as `no-<flag>` (the later of the two wins).
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  const keyOf = new Map<string, string>();
  for (const [key, value] of Object.entries(defaults)) {
    const type = typeof value === 'boolean' ? 'boolean' : 'string';
    for (const name of type === 'boolean' ? [kebab(key), `no-${kebab(key)}`] : [kebab(key)]) {
      spec[name] = { type };
      keyOf.set(name, key);
    }
  }
  const known = Object.keys(defaults).map((k) => `--${kebab(k)}`);
  const fail = (what: string): never => {
    throw new Error(`parseArgs: ${what}. Known flags: ${known.join(', ')}.`);
  };
  const tokens = (() => {
    try {
      return nodeParseArgs({ args: [...argv], options: spec, strict: true, tokens: true }).tokens;
    } catch (error) {
      // Node's first sentence names the flag ("Unknown option '--dpeth'"); ours adds the known ones.
      const [first] = (error as Error).message.split(/\.(?:\s|$)/);
      const text = first.replace(/'/g, '').replace('Unknown option', 'unknown flag');
      const key = keyOf.get(/--([\w-]+)/.exec(text)?.[1] ?? '');
      const missing = key !== undefined && /argument missing/.test(text);
      return fail(
        missing ? `--${kebab(key)} needs a ${typeof defaults[key]} value` : text.replace(/^U/, 'u'),
      );
    }
  })();
  const result: Record<string, FlagValue> = { ...defaults };
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    if (token.name === 'help') {
      (options.log ?? console.log)(helpText(defaults, options.usage));
      process.exit(0);
    }
    const key = keyOf.get(token.name)!;
    const [kind, raw] = [typeof defaults[key], token.value ?? ''];
    if (kind === 'number' && (raw.trim() === '' || !Number.isFinite(Number(raw)))) {
      fail(`expected --${token.name} to be a finite number, received: ${JSON.stringify(raw)}`);
    }
    result[key] =
      kind === 'boolean' ? !token.name.startsWith('no-') : kind === 'number' ? Number(raw) : raw;
  }
  return result as T;
}
