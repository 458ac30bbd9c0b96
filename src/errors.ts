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
 * (`layers.dropout(0.5)`, Keras's positional style) are rejected too.
 * @param owner who complains, e.g. `clipOptimizer` or `Dropout 'drop_a'`.
 * @param options what the user passed (nothing to check when undefined or null).
 * @param accepted every key `owner` understands.
 * @param what how the message calls the keys: 'option' (functions) or 'argument' (layers).
 */
export function checkOptionKeys(
  owner: string,
  options: unknown,
  accepted: readonly string[],
  what: 'option' | 'argument' = 'option',
): void {
  if (options == null) return;
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
  if (unknown.length === 0) return;
  const hints = unknown.map((k) => {
    const near = nearestKey(k, accepted);
    return near ? `'${k}' (did you mean '${near}'?)` : `'${k}'`;
  });
  throw new DropnormValueError(
    `${owner}: unknown ${what}${unknown.length > 1 ? 's' : ''} ${hints.join(', ')}. ` +
      acceptedList(accepted, what),
  );
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
