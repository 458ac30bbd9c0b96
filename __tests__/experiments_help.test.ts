// Every experiment's `--help` (and the runner's) lists every flag with its default, seeds included,
// and exits 0, as before the move to util.parseArgs. Child processes: each main.ts parses argv at
// load time.
import { execFile } from 'child_process';
import * as path from 'path';
import { promisify } from 'util';

const ROOT = path.resolve(__dirname, '..');
const run = (file: string) =>
  promisify(execFile)(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [file, '--help'], {
    cwd: ROOT,
    timeout: 120_000,
  });

const MAINS = [
  'overfitting',
  'vanishing-gradient',
  'bn-statistics',
  'bn-folding',
  'cnn-dropout-bn',
  'small-batch',
];

describe('--help of every experiment', () => {
  it.each(MAINS)(
    '%s lists its flags with defaults, seeds included',
    async (name) => {
      const { stdout } = await run(`experiments/${name}/main.ts`);
      expect(stdout).toMatch(/Flags:/);
      // bn-folding measures one trained model's folding error and latency: one seed.
      const seeds =
        name === 'bn-folding' ? /--seed <number>/ : /--seeds <number>\s+\(default: [35]\)/;
      expect(stdout).toMatch(seeds);
      expect(stdout).toMatch(/--quick\s+\(default: false\)/);
      expect(stdout).toMatch(/--out <string>\s+\(default: "reports\//);
    },
    130_000,
  );

  it('the runner lists --quick, --backend, --out and --only', async () => {
    const { stdout } = await run('experiments/run.ts');
    for (const flag of ['--quick', '--backend', '--out', '--only']) expect(stdout).toContain(flag);
  }, 130_000);
});
