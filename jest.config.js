/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // Type checking is `npm run typecheck`; the test run only transpiles.
    '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }],
  },
  moduleNameMapper: {
    '^tfjs-dropnorm$': '<rootDir>/src/index.ts',
    '^tfjs-dropnorm/node$': '<rootDir>/src/node/index.ts',
  },
  setupFiles: ['<rootDir>/__tests__/setup.ts'],
  testTimeout: 60000,
};
