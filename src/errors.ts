/**
 * Errors are part of the API. Every message names the layer (or function), the argument, the value
 * received and the fix, in the Keras style: "Expected …, received: rate=1.2".
 */

/** Thrown for an invalid argument or input. `name` is 'ValueError', as in tfjs-layers and Keras. */
export class DropnormValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
  }
}

function show(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value == null)
    return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/**
 * Builds the standard message: `<owner>: expected <arg> <expectation>, received: <arg>=<value>. <fix>`.
 * @param owner who complains, e.g. `BatchNorm 'bn1'` or `foldBatchNorm`.
 */
export function invalidArgument(
  owner: string,
  arg: string,
  value: unknown,
  expectation: string,
  fix?: string,
): DropnormValueError {
  const tail = fix ? ` ${fix}` : '';
  return new DropnormValueError(
    `${owner}: expected ${arg} ${expectation}, received: ${arg}=${show(value)}.${tail}`,
  );
}

/**
 * The arguments of the base `tf.layers.Layer` (what every layer accepts and what tfjs's
 * `Layer.getConfig` writes), accepted by every layer of the pack on top of its own.
 */
export const BASE_LAYER_ARGS = [
  'name',
  'trainable',
  'inputShape',
  'batchInputShape',
  'batchSize',
  'dtype',
  'weights',
  'inputDType',
] as const;

/**
 * The keys of an options type `T`, written once as `{ key: true, … }` so that the compiler checks
 * the list against the type: a key of `T` missing here, or a key here that `T` lacks, is a type
 * error. Adding an option is then one line in its interface and one line here, and tsc says where.
 *
 * ```ts
 * const CLIP_OPTIONS = optionKeys<ClipOptions>({ clipNorm: true, clipValue: true, … });
 * ```
 */
export function optionKeys<T extends object>(keys: { [K in keyof T]-?: true }): readonly string[] {
  return Object.keys(keys);
}

/**
 * The type names an {@link OptionType} is written with, each with how a message says it.
 * `shape` is a tensor shape as tf.layers writes it (`[null, 3]`: integers ≥ 0, or null for a
 * free dimension); `any` is a value its owner checks itself (e.g. an optimizer instance).
 */
const TYPE_NAMES = {
  boolean: 'true or false',
  number: 'a number',
  integer: 'an integer',
  string: 'a string',
  function: 'a function',
  object: 'an object',
  array: 'an array',
  shape: 'a shape (an array of integers ≥ 0 or null)',
  null: 'null',
  any: 'anything',
} as const;

/** One of the type names of an {@link OptionType}. */
export type TypeName = keyof typeof TYPE_NAMES;

/**
 * The type an option must have, written declaratively: a type name (`'boolean'`), up to three
 * alternatives (`'number|null'`), or the list of the accepted values (`['batch', 'epoch']`).
 * `undefined` always means "absent" (the default), so it is never listed.
 */
export type OptionType =
  | TypeName
  | `${TypeName}|${TypeName}`
  | `${TypeName}|${TypeName}|${TypeName}`
  | readonly (string | number | boolean | null)[];

/** Every option of an owner with the type it must have: `{ momentum: 'number|null', … }`. */
export type OptionSpec = Readonly<Record<string, OptionType>>;

/**
 * The options of an options type `T` with their types, written once as `{ key: type, … }` and
 * checked by the compiler against `T` like {@link optionKeys}. {@link checkOptionKeys} given the
 * result checks the names AND the types: one declaration per owner, no per-option type checks.
 *
 * ```ts
 * const CLIP_OPTIONS = optionSpec<ClipOptions>({ clipNorm: 'number', nonFinite: ['skip', 'throw'], … });
 * ```
 */
export function optionSpec<T extends object>(spec: { [K in keyof T]-?: OptionType }): OptionSpec {
  return spec;
}

/**
 * The type of a tf.layers object argument (initializer, regularizer, constraint, activation): its
 * registered name (`'heNormal'`), an instance, its serialized `{className, config}`, or null for
 * the default. `any` here because the owner resolves it (keras_objects.ts) and its message is the
 * more precise one (it names the registered objects and the nearest name).
 */
export const KERAS_OBJECT: OptionType = 'any';

/** The types of the base `tf.layers.Layer` arguments ({@link BASE_LAYER_ARGS}). */
export const BASE_LAYER_ARG_TYPES: OptionSpec = {
  name: 'string|null',
  trainable: 'boolean|null',
  inputShape: 'shape|null',
  batchInputShape: 'shape|null',
  batchSize: 'integer|null',
  dtype: 'string|null',
  weights: 'array|null',
  inputDType: 'string|null',
} satisfies Record<(typeof BASE_LAYER_ARGS)[number], OptionType>;

function hasType(value: unknown, name: TypeName): boolean {
  switch (name) {
    case 'boolean':
    case 'number':
    case 'string':
    case 'function':
      // NaN is a number here: the owner's range check names it ("rate in [0, 1)").
      return typeof value === name;
    case 'integer':
      return Number.isInteger(value);
    case 'object':
      return value !== null && typeof value === 'object' && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    case 'shape':
      return (
        Array.isArray(value) &&
        value.every((d) => d === null || (Number.isInteger(d) && (d as number) >= 0))
      );
    case 'null':
      return value === null;
    case 'any':
      return true;
  }
}

/** Whether `value` has the type `type` (undefined, i.e. absent, always has). */
export function matchesType(value: unknown, type: OptionType): boolean {
  if (value === undefined) return true;
  if (typeof type !== 'string') return type.includes(value as never);
  return type.split('|').some((name) => hasType(value, name as TypeName));
}

/** How a message says `type`: "a number or null", "one of 'batch', 'epoch'". */
export function describeType(type: OptionType): string {
  if (typeof type !== 'string') return `one of ${type.map((v) => show(v)).join(', ')}`;
  return type
    .split('|')
    .map((name) => TYPE_NAMES[name as TypeName])
    .join(' or ');
}

/**
 * The fix for a value of the wrong type: the value the user most likely meant, when there is one
 * (`'0.9'` → `0.9`, `'false'` → `false`, `[0.5]` → `0.5`), else the types to use.
 */
function typeFix(arg: string, value: unknown, type: OptionType): string {
  const candidates: unknown[] = [];
  if (typeof value === 'string' && value.trim() !== '') {
    if (!Number.isNaN(Number(value))) candidates.push(Number(value));
    if (value === 'true' || value === 'false') candidates.push(value === 'true');
  }
  if (Array.isArray(value) && value.length === 1) candidates.push(value[0]);
  const meant = candidates.find((c) => matchesType(c, type));
  if (meant !== undefined) {
    return `Write ${arg}: ${show(meant)} (${Array.isArray(value) ? 'not a list' : 'not a string'}).`;
  }
  // A switch given 'no', 0 or 'false' would be read by truthiness elsewhere: say it is not here.
  const truthy = matchesType(true, type) ? ' (nothing is read by truthiness)' : '';
  return `Pass ${describeType(type)}${truthy}, or leave ${arg} out for the default.`;
}

/**
 * Rejects an option whose value does not have its declared type, with the standard message
 * (plain JavaScript and JSON configs alike: nothing is read by truthiness or coerced).
 */
export function checkOptionType(owner: string, arg: string, value: unknown, type: OptionType) {
  if (matchesType(value, type)) return;
  throw invalidArgument(
    owner,
    arg,
    value,
    `to be ${describeType(type)}`,
    typeFix(arg, value, type),
  );
}

/** Edit distance between two strings (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/**
 * The accepted key a mistyped `key` most likely meant: the same letters up to case and `_`/`-`
 * (Keras's `clipnorm`, `block_size`), else the nearest by edit distance within a third of its
 * length; undefined when nothing is close.
 */
export function nearestKey(key: string, accepted: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  const exact = accepted.find((a) => norm(a) === norm(key));
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(key.length / 3)) + 1;
  for (const a of accepted) {
    const d = editDistance(norm(key), norm(a));
    if (d < bestDistance) [best, bestDistance] = [a, d];
  }
  return best;
}

/**
 * Rejects option keys `owner` does not know (Keras rejects unknown keyword arguments; a silently
 * ignored `clipnorm` or `block_size` would train with the default instead). Keys whose value is
 * `undefined` count as absent. The message lists the accepted keys (a layer's own first, then the
 * base `tf.layers.Layer` arguments) and suggests the nearest one. Options that are not an object
 * (`layers.dropout(0.5)`, Keras's positional style) are rejected too. Given an {@link OptionSpec},
 * the value of every key is then checked against its declared type ({@link checkOptionType}).
 * @param owner who complains, e.g. `clipOptimizer` or `Dropout 'drop_a'`.
 * @param options what the user passed (nothing to check when undefined or null).
 * @param spec every key `owner` understands: a list (names only) or an {@link OptionSpec}.
 * @param what how the message calls the keys: 'option' (functions) or 'argument' (layers).
 */
export function checkOptionKeys(
  owner: string,
  options: unknown,
  spec: readonly string[] | OptionSpec,
  what: 'option' | 'argument' = 'option',
): void {
  if (options == null) return;
  const accepted: readonly string[] = isKeyList(spec) ? spec : Object.keys(spec);
  if (typeof options !== 'object' || Array.isArray(options)) {
    const example = accepted.filter((k) => !(BASE_LAYER_ARGS as readonly string[]).includes(k))[0];
    throw invalidArgument(
      owner,
      `${what}s`,
      options,
      `to be an object of named ${what}s`,
      example ? `Pass them by name, e.g. {${example}: …}.` : undefined,
    );
  }
  const unknown = Object.keys(options).filter(
    (k) => !accepted.includes(k) && (options as Record<string, unknown>)[k] !== undefined,
  );
  if (unknown.length === 0) {
    if (!isKeyList(spec)) checkOptionTypes(owner, options as Record<string, unknown>, spec);
    return;
  }
  const hints = unknown.map((k) => {
    const near = nearestKey(k, accepted);
    return near ? `'${k}' (did you mean '${near}'?)` : `'${k}'`;
  });
  throw new DropnormValueError(
    `${owner}: unknown ${what}${unknown.length > 1 ? 's' : ''} ${hints.join(', ')}. ` +
      acceptedList(accepted, what),
  );
}

function isKeyList(spec: readonly string[] | OptionSpec): spec is readonly string[] {
  return Array.isArray(spec);
}

/** Checks the type of every option of `options` that `spec` declares (see {@link OptionSpec}). */
export function checkOptionTypes(
  owner: string,
  options: Record<string, unknown>,
  spec: OptionSpec,
): void {
  for (const [key, type] of Object.entries(spec)) {
    if (Object.prototype.hasOwnProperty.call(options, key)) {
      checkOptionType(owner, key, options[key], type);
    }
  }
}

/** "Accepted options: a, b." with the base Layer arguments, when all present, named as a group. */
function acceptedList(accepted: readonly string[], what: 'option' | 'argument'): string {
  if (accepted.length === 0) return `It takes no ${what}s.`;
  const base: readonly string[] = BASE_LAYER_ARGS;
  const hasBase = base.every((k) => accepted.includes(k));
  const own = hasBase ? accepted.filter((k) => !base.includes(k)) : [...accepted];
  const list = own.sort().join(', ');
  if (!hasBase) return `Accepted ${what}s: ${list}.`;
  return (
    `Accepted ${what}s: ${list ? `${list}, and ` : ''}the tf.layers.Layer arguments ` +
    `${[...base].sort().join(', ')}.`
  );
}

/** The public name of a layer class: the pack's serialization prefix `Dropnorm` removed. */
export function publicClassName(className: string): string {
  return className.startsWith('Dropnorm') ? className.slice('Dropnorm'.length) : className;
}

/**
 * The owner of an error message about a layer, named as the user wrote it: the public class and
 * the layer name, e.g. `Dropout 'drop_a'` (not the serialization name `DropnormDropout`). A class
 * serialized under a foreign name (Keras's `GroupNormalization`) states its public name in a static
 * `publicName`.
 */
export function describeLayer(layer: { getClassName(): string; name: string }): string {
  const own = (layer.constructor as { publicName?: unknown }).publicName;
  const name = typeof own === 'string' ? own : publicClassName(layer.getClassName());
  return `${name} '${layer.name}'`;
}
