/**
 * Flags for the experiments and benches: Node's `util.parseArgs`, typed by the defaults.
 *
 * ```ts
 * const args = parseArgs({ depth: 20, quick: false, out: 'reports/x', backend: '' });
 * // --depth 8 | --depth=8 | --quick | --no-quick | --out=/tmp/r | --max-epochs 5
 * ```
 * Flags are the keys of `defaults` in kebab-case (`maxEpochs` ↔ `--max-epochs`; the camelCase
 * spelling is accepted too). A key's type is its default's: numbers must parse as finite numbers,
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

type NodeOptions = Record<string, { type: 'string' | 'boolean' }>;

/** Parses `argv` (default `process.argv.slice(2)`) against `defaults`; see the module doc. */
export function parseArgs<T extends Record<string, FlagValue>>(
  defaults: T,
  argv: readonly string[] = process.argv.slice(2),
  options: ParseArgsOptions = {},
): T {
  // Each key under its kebab-case and camelCase spelling, booleans also as `no-<flag>`.
  const spec: NodeOptions = { help: { type: 'boolean' }, h: { type: 'boolean' } };
  const keyOf = new Map<string, { key: string; negated: boolean }>();
  for (const [key, value] of Object.entries(defaults)) {
    const type = typeof value === 'boolean' ? 'boolean' : 'string';
    for (const name of new Set([kebab(key), key])) {
      spec[name] = { type };
      keyOf.set(name, { key, negated: false });
      if (type === 'boolean') {
        spec[`no-${name}`] = { type };
        keyOf.set(`no-${name}`, { key, negated: true });
      }
    }
  }
  const known = Object.keys(defaults)
    .map((k) => `--${kebab(k)}`)
    .join(', ');
  const config = { args: [...argv], options: spec, strict: true, tokens: true } as const;
  let parsed: ReturnType<typeof nodeParseArgs<typeof config>>;
  try {
    parsed = nodeParseArgs(config);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const flag = /'(--?[^' ]+)/.exec(message)?.[1] ?? '';
    const name = flag.replace(/^-+/, '');
    const code = (error as { code?: string }).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      throw new Error(`parseArgs: unknown flag ${flag}. Known flags: ${known}.`);
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      throw new Error(`parseArgs: unexpected argument ${flag || message}. Known flags: ${known}.`);
    }
    const entry = keyOf.get(name);
    if (entry && /argument missing/.test(message)) {
      throw new Error(`parseArgs: --${name} needs a ${typeof defaults[entry.key]} value.`);
    }
    throw new Error(`parseArgs: ${message} Known flags: ${known}.`);
  }
  if (parsed.values.help || parsed.values.h) {
    (options.log ?? console.log)(helpText(defaults, options.usage));
    process.exit(0);
  }
  const result: Record<string, FlagValue> = { ...defaults };
  // In argv's order, so that a later flag wins (`--quick --no-quick` is false).
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    const name = token.name;
    const raw = token.value;
    const entry = keyOf.get(name);
    if (!entry) continue;
    const kind = typeof defaults[entry.key];
    if (kind === 'boolean') result[entry.key] = entry.negated ? false : true;
    else if (kind === 'number') {
      const value = Number(raw);
      if (String(raw).trim() === '' || !Number.isFinite(value)) {
        throw new Error(
          `parseArgs: expected --${name} to be a finite number, received: ${JSON.stringify(raw)}.`,
        );
      }
      result[entry.key] = value;
    } else result[entry.key] = String(raw);
  }
  return result as T;
}
