import {
  BASE_LAYER_ARGS,
  checkOptionKeys,
  describeLayer,
  DropnormValueError,
  nearestKey,
  optionKeys,
  publicClassName,
} from '../src/errors';

describe('checkOptionKeys', () => {
  const accepted = ['clipNorm', 'clipValue', 'globalClipNorm', 'nonFinite'];

  it('accepts known keys and keys whose value is undefined', () => {
    expect(() => checkOptionKeys('clipOptimizer', { clipNorm: 1 }, accepted)).not.toThrow();
    expect(() => checkOptionKeys('clipOptimizer', { clipnorm: undefined }, accepted)).not.toThrow();
    expect(() => checkOptionKeys('clipOptimizer', undefined, accepted)).not.toThrow();
  });

  it('rejects an unknown key with a DropnormValueError naming it, the nearest key and the list', () => {
    let error: unknown;
    try {
      checkOptionKeys('clipOptimizer', { clipnorm: 1 }, accepted);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DropnormValueError);
    expect((error as Error).message).toBe(
      "clipOptimizer: unknown option 'clipnorm' (did you mean 'clipNorm'?). " +
        'Accepted options: clipNorm, clipValue, globalClipNorm, nonFinite.',
    );
  });

  it('lists every unknown key, with a suggestion only where one is close', () => {
    expect(() => checkOptionKeys('f', { clipnorm: 1, zzz: 2 }, accepted, 'argument')).toThrow(
      "f: unknown arguments 'clipnorm' (did you mean 'clipNorm'?), 'zzz'. Accepted arguments:",
    );
  });
});

describe('checkOptionKeys: shapes of the message', () => {
  it('a layer: its own arguments first, then the tf.layers.Layer arguments as a group', () => {
    expect(() =>
      checkOptionKeys("Dropout 'd'", { sed: 1 }, [...BASE_LAYER_ARGS, 'seed', 'rate'], 'argument'),
    ).toThrow(
      "Dropout 'd': unknown argument 'sed' (did you mean 'seed'?). Accepted arguments: rate, seed, " +
        'and the tf.layers.Layer arguments batchInputShape, batchSize, dtype, inputDType, ' +
        'inputShape, name, trainable, weights.',
    );
  });

  it('options that are not an object, and an owner that takes none', () => {
    expect(() => checkOptionKeys('f', 0.5, ['rate'])).toThrow(
      'f: expected options to be an object of named options, received: options=0.5. Pass them by name, e.g. {rate: …}.',
    );
    expect(() => checkOptionKeys('f', ['a'], ['rate'])).toThrow(DropnormValueError);
    expect(() => checkOptionKeys('f', null, ['rate'])).not.toThrow();
    expect(() => checkOptionKeys('g', { a: 1 }, [])).toThrow(
      "g: unknown option 'a'. It takes no options.",
    );
  });
});

describe('optionKeys', () => {
  it("lists an options type's keys (the compiler checks the list against the type)", () => {
    interface Opts {
      clipNorm?: number;
      nonFinite?: 'skip';
    }
    expect(optionKeys<Opts>({ clipNorm: true, nonFinite: true })).toEqual([
      'clipNorm',
      'nonFinite',
    ]);
    // @ts-expect-error a key of Opts is missing
    optionKeys<Opts>({ clipNorm: true });
    // @ts-expect-error a key Opts does not have
    optionKeys<Opts>({ clipNorm: true, nonFinite: true, clipnorm: true });
  });
});

describe('nearestKey', () => {
  it('matches snake_case and lowercase spellings exactly', () => {
    expect(nearestKey('block_size', ['rate', 'blockSize', 'seed'])).toBe('blockSize');
    expect(nearestKey('global_clipnorm', ['clipNorm', 'globalClipNorm'])).toBe('globalClipNorm');
  });
  it('matches a typo by edit distance, and nothing when too far', () => {
    expect(nearestKey('varianceCorection', ['momentum', 'varianceCorrection'])).toBe(
      'varianceCorrection',
    );
    expect(nearestKey('xyz', ['momentum', 'varianceCorrection'])).toBeUndefined();
  });
});

describe('describeLayer', () => {
  it('names the public class, not the serialization name', () => {
    expect(publicClassName('DropnormDropout')).toBe('Dropout');
    expect(publicClassName('BatchNormalization')).toBe('BatchNormalization');
    expect(describeLayer({ getClassName: () => 'DropnormBatchNorm', name: 'bn1' })).toBe(
      "BatchNorm 'bn1'",
    );
  });
});
