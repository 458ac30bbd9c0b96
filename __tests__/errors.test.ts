import {
  checkOptionKeys,
  describeLayer,
  DropnormValueError,
  nearestKey,
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
