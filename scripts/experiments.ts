/**
 * `npm run experiments`: runs every example (overfitting, vanishing-gradient, bn-statistics,
 * bn-folding), each as its own process writing `reports/<name>/`, then writes `reports/index.md`
 * linking each report with an overall summary table of key numbers taken from each results.json.
 *
 * Flags: --quick (every example's quick mode; the whole run then takes under 2 minutes),
 * --backend NAME (passed on), --out DIR (default reports), --only a,b (a subset).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from '../examples/lib/cli';
import { fmt, formatTable, fromJson, markdownTable, pct } from '../examples/lib/report';

type Json = Record<string, unknown>;
type Metric = [string, string];

interface Experiment {
  name: string;
  title: string;
  /** What it shows, in one sentence. */
  question: string;
  /** Key numbers from its results.json. */
  summarize(results: Json): Metric[];
}

const arr = (v: unknown) => (Array.isArray(v) ? (v as Json[]) : []);
const num = (v: unknown) => (typeof v === 'number' ? v : NaN);

const EXPERIMENTS: Experiment[] = [
  {
    name: 'overfitting',
    title: 'Overfitting on small MNIST',
    question:
      'Do dropout variants, BatchNorm and L2 close the generalization gap of an MLP trained on few digits?',
    summarize: (r) => {
      const stat = (c: Json, key: string) => ((c.stats as Json)[key] as Json | undefined) ?? {};
      const meanStd = (s: Json, f: (x: number) => string) => `${f(num(s.mean))} ± ${f(num(s.std))}`;
      return arr(r.configs).map((c) => [
        `${c.label}: final held-out accuracy; min held-out loss`,
        `${meanStd(stat(c, 'finalHeldOutAcc'), pct)}; ${meanStd(stat(c, 'minHeldOutLoss'), fmt)}`,
      ]);
    },
  },
  {
    name: 'vanishing-gradient',
    title: 'Vanishing and exploding gradients',
    question:
      'Which remedies keep gradients flowing through a 20-layer MLP, and does dropout help (it should not)?',
    summarize: (r) =>
      arr(r.configs).map((c) => [
        `${c.name}: first/last gradient ratio at init → after training; held-out accuracy`,
        `${fmt(num(c.ratioInit))} → ${fmt(num(c.ratioFinal))}; ${pct(num(c.heldOutAccuracy))}`,
      ]),
  },
  {
    name: 'bn-statistics',
    title: 'Running variance vs population variance',
    question:
      'How far is each running-variance estimate from the true population variance at small batch sizes?',
    summarize: (r) => {
      const smallest = Math.min(...arr(r.ratios).map((c) => num(c.batchSize)));
      return arr(r.ratios)
        .filter((c) => c.batchSize === smallest && c.source === 'MNIST')
        .map((c) => [
          `MNIST, batch ${smallest}: ${c.variant} running σ² / true σ²`,
          `${fmt(num(c.mean))} ± ${fmt(num(c.std))}`,
        ]);
    },
  },
  {
    name: 'bn-folding',
    title: 'Folding BatchNorm for inference',
    question: 'Does folding BN into the preceding layer keep the outputs and cut size and latency?',
    summarize: (r) =>
      arr(r.rows).map((row) => {
        const params = row.params as number[];
        return [
          `${row.model} (${row.variant}), batch ${row.batch}: max |Δ output|, params, latency folded/original`,
          `${fmt(num(row.maxAbsDiff))}, ${params?.[0]} → ${params?.[1]}, ${fmt(num(row.latencyRatio))}`,
        ];
      }),
  },
];

interface Run {
  experiment: Experiment;
  ok: boolean;
  seconds: number;
  metrics: Metric[];
  error?: string;
}

function runOne(exp: Experiment, args: { quick: boolean; backend: string; out: string }): Run {
  const out = path.join(args.out, exp.name);
  const argv = [path.join('examples', `${exp.name}.ts`), '--out', out];
  if (args.quick) argv.push('--quick');
  if (args.backend) argv.push('--backend', args.backend);
  const tsx = path.join('node_modules', '.bin', 'tsx');
  console.error(`\n▶ ${exp.name}${args.quick ? ' (--quick)' : ''}`);
  const t0 = Date.now();
  const child = spawnSync(tsx, argv, { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
  const seconds = (Date.now() - t0) / 1000;
  process.stderr.write((child.stderr ?? '').split('\n').slice(-5).join('\n'));
  if (child.status !== 0) {
    const tail = (child.stderr ?? '').trim().split('\n').slice(-3).join(' ').slice(0, 400);
    return {
      experiment: exp,
      ok: false,
      seconds,
      metrics: [],
      error: `exit ${child.status}: ${tail}`,
    };
  }
  const results = fromJson<Json>(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  return { experiment: exp, ok: true, seconds, metrics: exp.summarize(results) };
}

function main(): void {
  const args = parseArgs(
    { quick: false, backend: '', out: 'reports', only: '' },
    process.argv.slice(2),
    {
      usage:
        'npm run experiments -- [--quick] [--backend cpu|wasm|tensorflow] [--out reports] [--only overfitting,bn-folding]',
    },
  );
  const only = args.only ? args.only.split(',') : null;
  const runs = EXPERIMENTS.filter((e) => !only || only.includes(e.name)).map((e) =>
    runOne(e, args),
  );
  const total = runs.reduce((s, r) => s + r.seconds, 0);

  const header = ['experiment', 'status', 'time (s)', 'report'];
  const rows = runs.map((r) => [
    r.experiment.title,
    r.ok ? 'ok' : 'FAILED',
    r.seconds.toFixed(0),
    `${r.experiment.name}/report.md`,
  ]);
  console.log('\n' + formatTable(header, rows));
  const md = [
    '# tfjs-dropnorm experiments',
    '',
    `Generated by \`npm run experiments${args.quick ? ' -- --quick' : ''}\` on ${new Date().toISOString().slice(0, 10)}; total ${total.toFixed(0)} s.` +
      (args.quick
        ? ' Quick mode: smaller data, nets and epochs; the full reports come from a run without --quick.'
        : ''),
    '',
    markdownTable(
      header,
      runs.map((r) => [
        r.experiment.title,
        r.ok ? 'ok' : 'FAILED',
        r.seconds.toFixed(0),
        `[${r.experiment.name}/report.md](${r.experiment.name}/report.md)`,
      ]),
    ),
    '',
    ...runs.flatMap((r) => [
      `## [${r.experiment.title}](${r.experiment.name}/report.md)`,
      '',
      r.experiment.question,
      '',
      r.ok ? markdownTable(['key number', 'value'], r.metrics) : `**Failed:** ${r.error}`,
      '',
    ]),
  ].join('\n');
  fs.mkdirSync(args.out, { recursive: true });
  fs.writeFileSync(path.join(args.out, 'index.md'), md);
  console.log(
    `\n${runs.filter((r) => r.ok).length}/${runs.length} experiments ok, ${total.toFixed(0)} s → ${path.join(args.out, 'index.md')}`,
  );
  if (runs.some((r) => !r.ok)) process.exitCode = 1;
}

main();
