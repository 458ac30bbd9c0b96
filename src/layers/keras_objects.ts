/**
 * Resolves the identifiers tf.layers accepts for initializers, regularizers and constraints
 * ('zeros', 'glorotNormal', 'l1l2', 'maxNorm', a serialized `{className, config}` or an instance)
 * to instances, and serializes them back, with the rules tfjs-layers uses internally
 * (`getInitializer`, `getRegularizer`, `getConstraint`, which tfjs does not export).
 */
import * as tf from '@tensorflow/tfjs';
import { invalidArgument, nearestKey } from '../errors';

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

/** What a resolved object is: the kind named in messages, and how the user writes one. */
type Kind = 'initializer' | 'regularizer' | 'constraint';

/**
 * Who asked for the object, for the error message: the layer as `describeLayer` names it
 * (`DropConnectDense 'dc'`) and the constructor argument (`kernelInitializer`).
 */
export interface ObjectOwner {
  owner: string;
  argument: string;
}

// Who complains when a caller does not say (a layer that does not pass its name yet).
const ANONYMOUS = (kind: Kind): ObjectOwner => ({ owner: 'layer', argument: kind });

/**
 * The base class of a kind (tfjs does not export Initializer, Regularizer or Constraint as
 * values): the parent class of one built-in instance of it.
 */
function baseClass(kind: Kind): abstract new (...args: never[]) => unknown {
  const sample =
    kind === 'initializer'
      ? tf.initializers.zeros()
      : kind === 'regularizer'
        ? tf.regularizers.l1l2()
        : tf.constraints.nonNeg();
  return Object.getPrototypeOf(sample.constructor);
}

/** The registered class names of a kind: tfjs's own and the user's registered subclasses. */
function classNamesOf(kind: Kind): string[] {
  const base = baseClass(kind);
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  return Object.keys(map).filter((n) => map[n][0].prototype instanceof base);
}

/** A class name as the string identifier tf.layers accepts ('GlorotNormal' → 'glorotNormal'). */
function identifierOf(className: string): string {
  const special = Object.keys(SPECIAL_CLASS_NAMES).find(
    (k) => SPECIAL_CLASS_NAMES[k] === className,
  );
  return special ?? className.charAt(0).toLowerCase() + className.slice(1);
}

function unknownObject(kind: Kind, where: ObjectOwner, value: unknown, name?: string): Error {
  const names = classNamesOf(kind);
  const asString = typeof value === 'string';
  const choices = names.map((n) => (asString ? identifierOf(n) : n));
  const near = name == null ? undefined : nearestKey(asString ? String(value) : name, choices);
  const shown = choices.map((c) => `'${c}'`).join(', ');
  return invalidArgument(
    where.owner,
    where.argument,
    value,
    `to be a tfjs ${kind}: a name (${shown}), a {className, config} object, an instance, or a ` +
      'registered subclass',
    near ? `Did you mean '${near}'?` : undefined,
  );
}

function deserialize<T extends Serializable>(
  className: string,
  config: ConfigDict,
  kind: Kind,
  where: ObjectOwner,
  identifier: unknown,
): T {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  // A registered class of another kind ('dense' as an initializer) is as wrong as an unknown one.
  if (entry == null || !(entry[0].prototype instanceof baseClass(kind))) {
    throw unknownObject(kind, where, identifier, className);
  }
  const [cls, fromConfig] = entry;
  return fromConfig(cls, config) as T;
}

function resolve<T extends Serializable>(
  identifier: unknown,
  kind: Kind,
  where: ObjectOwner,
): T | null {
  if (identifier == null) return null;
  if (identifier instanceof tf.serialization.Serializable) return identifier as T;
  if (typeof identifier === 'string') {
    const className =
      SPECIAL_CLASS_NAMES[identifier] ?? identifier.charAt(0).toUpperCase() + identifier.slice(1);
    return deserialize<T>(className, {}, kind, where, identifier);
  }
  const dict = identifier as { className?: string; config?: ConfigDict };
  if (dict !== null && typeof dict === 'object' && typeof dict.className === 'string') {
    return deserialize<T>(dict.className, dict.config ?? {}, kind, where, identifier);
  }
  throw unknownObject(kind, where, identifier);
}

/**
 * An initializer from an identifier, with `fallback` when none is given.
 * @param where the layer and argument, named in the error for an unknown identifier.
 * @throws DropnormValueError naming the layer, the argument and the value, with the nearest name.
 */
export function getInitializer(
  identifier: unknown,
  fallback: string,
  where: ObjectOwner = ANONYMOUS('initializer'),
): Initializer {
  return resolve<Initializer>(identifier ?? fallback, 'initializer', where)!;
}

/** A regularizer, or null (see {@link getInitializer} for `where`). */
export function getRegularizer(
  identifier: unknown,
  where: ObjectOwner = ANONYMOUS('regularizer'),
): Regularizer | null {
  return resolve<Regularizer>(identifier, 'regularizer', where);
}

/** A constraint, or null (see {@link getInitializer} for `where`). */
export function getConstraint(
  identifier: unknown,
  where: ObjectOwner = ANONYMOUS('constraint'),
): Constraint | null {
  return resolve<Constraint>(identifier, 'constraint', where);
}

/** The Keras serialization `{className, config}` of an object, or null. */
export function serializeKerasObject(obj: Serializable | null | undefined): ConfigDict | null {
  if (obj == null) return null;
  return { className: obj.getClassName(), config: obj.getConfig() };
}
