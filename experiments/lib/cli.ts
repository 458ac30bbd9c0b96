/**
 * A tiny argv parser for the experiments, typed by its defaults (no dependency).
 *
 * ```ts
 * const args = parseArgs({ depth: 20, quick: false, out: 'reports/x', backend: '' });
 * // --depth 8 | --depth=8 | --quick | --quick=false | --no-quick | --out=/tmp/r
 * ```
 * Flags are the keys of `defaults`, written as is or in kebab-case (`maxEpochs` ↔ `--max-epochs`).
 * A key's type is its default's: numbers must parse as finite numbers, booleans take no value (or
 * `=true` / `=false`, or the `--no-` prefix), strings take the next argument. An unknown flag, a
 * missing value or a bad number throws, naming the flag and listing the known ones.
 */

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
  const byFlag = new Map<string, keyof T>();
  for (const key of Object.keys(defaults)) {
    byFlag.set(key, key);
    byFlag.set(kebab(key), key);
  }
  const known = Object.keys(defaults)
    .map((k) => `--${kebab(k)}`)
    .join(', ');
  const result: Record<string, FlagValue> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      (options.log ?? console.log)(helpText(defaults, options.usage));
      process.exit(0);
    }
    if (!arg.startsWith('--')) {
      throw new Error(
        `parseArgs: unexpected argument ${JSON.stringify(arg)}. Known flags: ${known}.`,
      );
    }
    const eq = arg.indexOf('=');
    let name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let inline: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    let key = byFlag.get(name);
    if (key === undefined && name.startsWith('no-') && inline === undefined) {
      const positive = byFlag.get(name.slice(3));
      if (positive !== undefined && typeof defaults[positive] === 'boolean') {
        key = positive;
        name = name.slice(3);
        inline = 'false';
      }
    }
    if (key === undefined) {
      throw new Error(`parseArgs: unknown flag --${name}. Known flags: ${known}.`);
    }
    const kind = typeof defaults[key];
    if (kind === 'boolean') {
      if (inline === undefined || inline === 'true') result[key as string] = true;
      else if (inline === 'false') result[key as string] = false;
      else {
        throw new Error(
          `parseArgs: expected --${name} to be a boolean (no value, =true or =false), received: ${JSON.stringify(inline)}.`,
        );
      }
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      raw = argv[i + 1];
      if (raw === undefined || (raw.startsWith('--') && raw.length > 2)) {
        throw new Error(`parseArgs: --${name} needs a ${kind} value.`);
      }
      i++;
    }
    if (kind === 'number') {
      const value = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(value)) {
        throw new Error(
          `parseArgs: expected --${name} to be a finite number, received: ${JSON.stringify(raw)}.`,
        );
      }
      result[key as string] = value;
    } else {
      result[key as string] = raw;
    }
  }
  return result as T;
}
