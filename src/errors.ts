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
