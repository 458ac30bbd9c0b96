/**
 * Resolves the identifiers tf.layers accepts for initializers, regularizers and constraints
 * ('zeros', 'glorotNormal', 'l1l2', 'maxNorm', a serialized `{className, config}` or an instance)
 * to instances, and serializes them back, with the rules tfjs-layers uses internally
 * (`getInitializer`, `getRegularizer`, `getConstraint`, which tfjs does not export).
 */
import * as tf from '@tensorflow/tfjs';

type Serializable = tf.serialization.Serializable;
type AddWeight = Parameters<tf.layers.Layer['addWeight']>;
/** tfjs's Initializer, Regularizer and Constraint base classes (exported by tfjs only as types of
 * `Layer.addWeight`'s parameters). */
export type Initializer = NonNullable<AddWeight[3]>;
export type Regularizer = NonNullable<AddWeight[4]>;
export type Constraint = NonNullable<AddWeight[6]>;
type ConfigDict = tf.serialization.ConfigDict;

// tfjs maps camelCase identifiers to Keras class names; every one capitalizes its first letter
// except this one.
const SPECIAL_CLASS_NAMES: Record<string, string> = { l1l2: 'L1L2' };

function deserialize<T extends Serializable>(
  className: string,
  config: ConfigDict,
  kind: string,
): T {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (entry == null) {
    throw new Error(
      `Unknown ${kind}: ${className}. It must be a tfjs ${kind} or a registered class.`,
    );
  }
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config) as T;
}

function resolve<T extends Serializable>(identifier: unknown, kind: string): T | null {
  if (identifier == null) return null;
  if (identifier instanceof tf.serialization.Serializable) return identifier as T;
  if (typeof identifier === 'string') {
    const className =
      SPECIAL_CLASS_NAMES[identifier] ?? identifier.charAt(0).toUpperCase() + identifier.slice(1);
    return deserialize<T>(className, {}, kind);
  }
  const dict = identifier as { className?: string; config?: ConfigDict };
  if (typeof dict.className === 'string') {
    return deserialize<T>(dict.className, dict.config ?? {}, kind);
  }
  throw new Error(`Cannot interpret ${JSON.stringify(identifier)} as a ${kind}.`);
}

/** An initializer from an identifier, with `fallback` when none is given. */
export function getInitializer(identifier: unknown, fallback: string): Initializer {
  return resolve<Initializer>(identifier ?? fallback, 'initializer')!;
}

/** A regularizer, or null. */
export function getRegularizer(identifier: unknown): Regularizer | null {
  return resolve<Regularizer>(identifier, 'regularizer');
}

/** A constraint, or null. */
export function getConstraint(identifier: unknown): Constraint | null {
  return resolve<Constraint>(identifier, 'constraint');
}

/** The Keras serialization `{className, config}` of an object, or null. */
export function serializeKerasObject(obj: Serializable | null | undefined): ConfigDict | null {
  if (obj == null) return null;
  return { className: obj.getClassName(), config: obj.getConfig() };
}
