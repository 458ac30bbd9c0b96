import * as tf from '@tensorflow/tfjs';
import { backendFromArgv, pickBackend } from 'tfjs-dropnorm/node';

describe('pickBackend', () => {
  afterEach(async () => {
    await tf.setBackend('cpu');
  });

  test('reads --backend NAME and --backend=NAME', () => {
    expect(backendFromArgv(['node', 'x.js', '--backend', 'wasm'])).toBe('wasm');
    expect(backendFromArgv(['node', 'x.js', '--backend=cpu'])).toBe('cpu');
    expect(backendFromArgv(['node', 'x.js'])).toBeUndefined();
  });

  test('an explicit flag beats TFJS_BACKEND, which beats the default order', async () => {
    const logs: string[] = [];
    const log = (l: string) => logs.push(l);
    expect(
      await pickBackend({ argv: ['--backend', 'cpu'], env: { TFJS_BACKEND: 'wasm' }, log }),
    ).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(await pickBackend({ argv: [], env: { TFJS_BACKEND: 'wasm' }, log })).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(logs).toEqual(['tfjs backend: cpu (tfjs 4.22.0)', 'tfjs backend: wasm (tfjs 4.22.0)']);
  });

  test('default: the fastest that loads (tfjs-node is absent here, so wasm)', async () => {
    const name = await pickBackend({ argv: [], env: {}, log: () => undefined });
    let hasTfjsNode = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      hasTfjsNode = false;
    }
    expect(name).toBe(hasTfjsNode ? 'tensorflow' : 'wasm');
  });

  test('an unknown or unavailable backend is a clear error', async () => {
    await expect(pickBackend({ backend: 'webgpu', log: () => undefined })).rejects.toThrow(
      /expected backend one of tensorflow \| wasm \| cpu, received: backend="webgpu"/,
    );
    let hasTfjsNode = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      hasTfjsNode = false;
    }
    if (!hasTfjsNode) {
      await expect(pickBackend({ backend: 'tensorflow', log: () => undefined })).rejects.toThrow(
        /backend 'tensorflow' could not be loaded\. Install @tensorflow\/tfjs-node/,
      );
    }
  });
});
