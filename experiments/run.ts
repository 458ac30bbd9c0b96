/**
 * `npm run experiments`: runs every experiment (overfitting, vanishing-gradient, bn-statistics,
 * bn-folding, cnn-dropout-bn, small-batch), each as its own process writing `reports/<name>/`, then writes
 * `reports/index.md` linking each report with a summary table of key numbers taken from each
 * results.json. Each experiment's progress goes to stderr as it runs (a bar on a terminal, plain
 * lines in a log), with a line of this runner's own at every experiment boundary.
 *
 * Flags: --quick (every experiment's quick mode), --backend NAME (passed on), --out DIR (default
 * reports), --only a,b (a subset).
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from './lib/cli';
import { duration, progressStyle } from './lib/progress';
import { fmt, formatTable, fromJson, markdownTable, pct } from './lib/report';

type Json = Record<string, unknown>;
type Metric = [string, string];

interface Experiment {
  name: string;
  title: string;
  /** Rough share of the whole run's time, for the runner's ETA (full run, quick run). */
  weight: { full: number; quick: number };
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
    weight: { full: 200, quick: 30 },
    question:
      'Do dropout variants, BatchNorm and L2 close the generalization gap of an MLP trained on few digits?',
    summarize: (r) => {
      const stat = (c: Json, key: string) => ((c.stats as Json)[key] as Json | undefined) ?? {};
      const meanStd = (s: Json, f: (x: number) => string) => `${f(num(s.mean))} ± ${f(num(s.std))}`;
      return arr(r.configs).map((c) => [
        `${c.label}: final held-out accuracy; held-out loss at the epoch the validation loss selects`,
        `${meanStd(stat(c, 'finalHeldOutAcc'), pct)}; ${meanStd(stat(c, 'minHeldOutLoss'), fmt)}`,
      ]);
    },
  },
  {
    name: 'vanishing-gradient',
    title: 'Vanishing and exploding gradients',
    weight: { full: 150, quick: 15 },
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
    weight: { full: 60, quick: 15 },
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
    weight: { full: 100, quick: 20 },
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
  {
    name: 'cnn-dropout-bn',
    title: 'Dropout and BatchNorm in a small CNN',
    weight: { full: 200, quick: 30 },
    question:
      'Where do dropout and BatchNorm go in a conv net, is the bias before BN redundant, and how large is the variance shift of dropout before BN?',
    summarize: (r) => {
      const stat = (c: Json, key: string) => ((c.stats as Json)[key] as Json | undefined) ?? {};
      const meanStd = (s: Json, f: (x: number) => string) => `${f(num(s.mean))} ± ${f(num(s.std))}`;
      return [
        ...arr(r.configs).map((c): Metric => [
          `${c.label}: final held-out accuracy; loss gap`,
          `${meanStd(stat(c, 'finalHeldOutAcc'), pct)}; ${meanStd(stat(c, 'lossGap'), fmt)}`,
        ]),
        ...arr(r.claims).map((c): Metric => [String(c.claim), String(c.verdict)]),
      ];
    },
  },
  {
    name: 'small-batch',
    title: 'Small and non-i.i.d. batches: Batch Renorm, Ghost BN, GroupNorm, LayerNorm',
    weight: { full: 400, quick: 30 },
    question:
      'Do Batch Renormalization, Ghost BatchNorm, BN on the convs only, GroupNorm and LayerNorm help where BatchNorm is weak (batches of 2–8, batches of two classes), and how far are the running statistics from the population?',
    summarize: (r) => {
      const meanStd = (s: Json, f: (x: number) => string) => `${f(num(s.mean))} ± ${f(num(s.std))}`;
      return [
        ...arr(r.summaries).map((s): Metric => [
          `${s.settingLabel}, ${s.label}: held-out accuracy`,
          meanStd(s.heldOutAcc as Json, pct),
        ]),
        ...arr(r.claims).map((c): Metric => [String(c.claim), String(c.verdict)]),
      ];
    },
  },
  {
    name: 'quantization',
    title: 'Quantized export after folding',
    weight: { full: 120, quick: 60 },
    question:
      'How much output error does each saveForInference mode cost per byte saved, on a pretrained and a trained MobileNetV2?',
    summarize: (r) =>
      arr(r.rows).map((row): Metric => [
        `${row.model}, ${row.label}: bytes / float32; mean TV; top-1 agreement`,
        `${fmt(num(row.ratio))}; ${fmt(num(row.totalVariation), 4)}; ${pct(num(row.top1Agreement))}`,
      ]),
  },
];

interface Run {
  experiment: Experiment;
  ok: boolean;
  seconds: number;
  metrics: Metric[];
  error?: string;
}

interface RunnerArgs {
  quick: boolean;
  backend: string;
  out: string;
}

/**
 * Runs one experiment as a child process. Its stderr is passed through as it comes (its progress)
 * and its tail kept for the error message; `DROPNORM_PROGRESS` tells it whether our stderr is a
 * terminal, since its own stderr is a pipe.
 */
function runOne(exp: Experiment, args: RunnerArgs): Promise<Run> {
  const out = path.join(args.out, exp.name);
  const argv = [path.join('experiments', exp.name, 'main.ts'), '--out', out];
  if (args.quick) argv.push('--quick');
  if (args.backend) argv.push('--backend', args.backend);
  const tsx = path.join('node_modules', '.bin', 'tsx');
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(tsx, argv, {
      stdio: ['ignore', 'inherit', 'pipe'],
      env: { ...process.env, DROPNORM_PROGRESS: progressStyle(process.stderr) },
    });
    let tail = '';
    child.stderr.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-4000);
    });
    child.on('close', (code) => {
      const seconds = (Date.now() - t0) / 1000;
      if (code !== 0) {
        const last = tail.trim().split('\n').slice(-3).join(' ').slice(0, 400);
        resolve({
          experiment: exp,
          ok: false,
          seconds,
          metrics: [],
          error: `exit ${code}: ${last}`,
        });
        return;
      }
      try {
        const results = fromJson<Json>(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
        resolve({ experiment: exp, ok: true, seconds, metrics: exp.summarize(results) });
      } catch (error) {
        resolve({ experiment: exp, ok: false, seconds, metrics: [], error: String(error) });
      }
    });
  });
}

async function main(): Promise<void> {
  const args = parseArgs(
    { quick: false, backend: '', out: 'reports', only: '' },
    process.argv.slice(2),
    {
      usage:
        'npm run experiments -- [--quick] [--backend cpu|wasm|tensorflow] [--out reports] [--only overfitting,bn-folding]',
    },
  );
  const only = args.only ? args.only.split(',') : null;
  // The experiments whose claims need the most seeds run first, so that a run cut short (a busy
  // machine) has them; index.md lists them in this order.
  const RUN_ORDER = [
    'small-batch',
    'cnn-dropout-bn',
    'overfitting',
    'vanishing-gradient',
    'bn-statistics',
    'bn-folding',
  ];
  const selected = EXPERIMENTS.filter((e) => !only || only.includes(e.name)).sort(
    (a, b) => RUN_ORDER.indexOf(a.name) - RUN_ORDER.indexOf(b.name),
  );
  const weight = (e: Experiment) => (args.quick ? e.weight.quick : e.weight.full);
  const totalWeight = selected.reduce((s, e) => s + weight(e), 0);
  const started = Date.now();
  const runs: Run[] = [];
  let doneWeight = 0;
  for (const [i, exp] of selected.entries()) {
    const elapsed = (Date.now() - started) / 1000;
    const eta =
      doneWeight > 0 ? ` ETA ${duration((elapsed / doneWeight) * (totalWeight - doneWeight))}` : '';
    console.error(
      `\n[experiments] ${i}/${selected.length} done | ${exp.name}${args.quick ? ' (--quick)' : ''} ` +
        `starting | elapsed ${duration(elapsed)}${eta}`,
    );
    const run = await runOne(exp, args);
    runs.push(run);
    doneWeight += weight(exp);
    console.error(
      `[experiments] ${exp.name} ${run.ok ? 'ok' : 'FAILED'} in ${duration(run.seconds)}`,
    );
  }
  const total = (Date.now() - started) / 1000;

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

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
