/** The CNN experiment's report: charts, `report.md` and the `results.json` content. */
import * as tf from '@tensorflow/tfjs';
import { barChart, lineChart, smallMultiples, VegaLiteSpec } from '../lib/charts';
import { metricInfo, MetricKey } from '../lib/curves';
import {
  generatedLine,
  markdownTable,
  mnistSplitBullet,
  pct,
  pooledInputText,
} from '../lib/report';
import { showStat } from '../lib/stats';
import { Claim, ConfigSummary } from './analysis';
import { configById, describeConfig } from './configs';
import type { Options } from './options';
import type { CnnRun } from './train';

/** The columns of the results table. */
export const TABLE_METRICS: readonly MetricKey[] = [
  'finalTrainAcc',
  'finalHeldOutAcc',
  'minHeldOutLoss',
  'finalHeldOutLoss',
  'lossGap',
  'accGap',
];

/** What the report needs from a finished run. */
export interface ReportInput {
  o: Options;
  seeds: readonly number[];
  backend: string;
  backendReason: string;
  seconds: number;
  summaries: readonly ConfigSummary[];
  claims: readonly Claim[];
  runs: readonly CnnRun[];
}

/** The results table: one row per configuration. */
export function resultsTable(summaries: readonly ConfigSummary[]): {
  header: string[];
  rows: string[][];
} {
  return {
    header: ['configuration', 'params', ...TABLE_METRICS.map((k) => metricInfo(k).short)],
    rows: summaries.map((s) => [
      s.label,
      String(s.params),
      ...TABLE_METRICS.map((k) => showStat(s.stats[k])),
    ]),
  };
}

function shiftTable(summaries: readonly ConfigSummary[]): { header: string[]; rows: string[][] } {
  const withBn = summaries.filter((s) => s.shifts.length > 0);
  const count = Math.max(0, ...withBn.map((s) => s.shifts.length));
  return {
    header: [
      'configuration',
      ...Array.from({ length: count }, (_, i) => `BN ${i + 1}`),
      'held-out acc',
      'after recalibration',
    ],
    rows: withBn.map((s) => [
      s.label,
      ...Array.from({ length: count }, (_, i) => {
        const x = s.shifts[i];
        if (!x) return '–';
        return `${showStat(x.before)} → ${showStat(x.after)}${x.afterDropout ? ' (after dropout)' : ''}`;
      }),
      pct(s.stats.finalHeldOutAcc.mean),
      pct(s.recalibrated!.heldOutAcc.mean),
    ]),
  };
}

function charts(input: ReportInput): Record<string, VegaLiteSpec> {
  const { summaries } = input;
  const seeds = input.seeds.length;
  const perEpoch = (key: 'heldOutAcc' | 'heldOutLoss') =>
    summaries.flatMap((s) => s.curve.map((p, e) => ({ series: s.label, x: e + 1, y: p[key] })));
  const wide = { config: { axis: { labelLimit: 320 }, legend: { labelLimit: 320 } } };
  return {
    held_out_accuracy: {
      ...lineChart(perEpoch('heldOutAcc'), {
        title: `Held-out accuracy per epoch (mean over ${seeds} seed(s))`,
        xTitle: 'epoch',
        yTitle: 'held-out accuracy',
        width: 560,
      }),
      ...wide,
    },
    loss_curves: smallMultiples(
      lineChart(
        summaries.flatMap((s) =>
          s.curve.flatMap((p, e) => [
            { config: s.label, series: 'train', x: e + 1, y: p.trainLoss },
            { config: s.label, series: 'held-out', x: e + 1, y: p.heldOutLoss },
          ]),
        ),
        { xTitle: 'epoch', yTitle: 'cross-entropy (log)', logY: true },
      ),
      'config',
      { columns: 3, title: `Train vs held-out loss (mean over ${seeds} seed(s))` },
    ),
    loss_gap: {
      ...barChart(
        summaries.map((s) => ({
          category: s.label,
          value: s.stats.lossGap.mean,
          error: s.stats.lossGap.std,
        })),
        {
          title: 'Loss gap at the end (held-out − train), mean ± std',
          yTitle: 'loss gap',
          width: 520,
        },
      ),
      ...wide,
    },
    variance_shift: {
      ...barChart(
        summaries.flatMap((s) =>
          s.shifts.flatMap((x) => [
            {
              category: `${s.label}, BN ${x.index + 1}`,
              group: 'trained',
              value: x.before.mean,
              error: x.before.std,
            },
            {
              category: `${s.label}, BN ${x.index + 1}`,
              group: 'recalibrated',
              value: x.after.mean,
              error: x.after.std,
            },
          ]),
        ),
        {
          title: 'Held-out variance of each BN input / its moving variance (1 = no shift)',
          yTitle: 'variance ratio',
          width: 640,
        },
      ),
      ...wide,
    },
  };
}

/** report.md, results.json and the charts of a run. */
export function cnnReport(input: ReportInput): {
  markdown: string;
  results: unknown;
  charts: Record<string, VegaLiteSpec>;
} {
  const { o, summaries, claims, backend } = input;
  const table = resultsTable(summaries);
  const shifts = shiftTable(summaries);
  const markdown = [
    '# Dropout and BatchNorm in a small CNN',
    '',
    generatedLine('cnn-dropout-bn', { ...input, quick: o.quick, tfjs: tf.version.tfjs }),
    '',
    '## Setup',
    '',
    mnistSplitBullet(o, input.seeds),
    `- Network: ${pooledInputText(o.inputPool)}Conv 3×3 (${o.filters1}) → ReLU → MaxPool → Conv 3×3 (${o.filters2}) → ReLU → MaxPool → ` +
      `Dense (${o.dense}) → ReLU → Dense (10) softmax, with the additions below. Adam (learning rate ` +
      `${o.learningRate}), batch ${o.batchSize}, ${o.epochs} epochs. Within a seed every configuration ` +
      'starts from the same kernels and sees the digits in the same order.',
    '- After every epoch both sets are evaluated in inference mode. For the nets with BatchNorm, after ' +
      'training: at every BN, the variance of its input over the held-out digits with the whole net in ' +
      'inference mode, divided by its moving variance (mean over channels; 1 = no shift, Li et al. 2019); ' +
      'then `recalibrateBatchNorm(model, trainDigits)` (the other layers, dropout included, in inference ' +
      'mode) and the same numbers again.',
    '',
    markdownTable(
      ['configuration', 'what it adds'],
      summaries.map((s) => [s.label, describeConfig(configById(s.id), o)]),
    ),
    '',
    '## Results',
    '',
    `Mean ± sample std over ${input.seeds.length} seed(s), after the last epoch.`,
    '',
    markdownTable(table.header, table.rows),
    '',
    '![held-out accuracy](held_out_accuracy.svg)',
    '',
    '![loss curves](loss_curves.svg)',
    '',
    '![loss gap](loss_gap.svg)',
    '',
    '## Variance shift at every BN',
    '',
    'Held-out variance of the BN input / moving variance, trained → after `recalibrateBatchNorm`, and ' +
      'held-out accuracy before and after recalibration.',
    '',
    markdownTable(shifts.header, shifts.rows),
    '',
    '![variance shift](variance_shift.svg)',
    '',
    '## Claims and verdicts',
    '',
    '_Generated from the numbers above._ A comparison between two configurations is made seed by seed ' +
      `(same split, kernels and data order; ${input.seeds.length} seeds): one is higher or lower when ` +
      'the 95% paired t interval of the mean per-seed difference excludes 0; otherwise "not ' +
      'separated". "The same accuracy" holds only as "not separated", not as a proof of equality.' +
      `${input.seeds.length < 2 ? ' With a single seed there is no interval: nothing separates.' : ''}`,
    '',
    markdownTable(
      ['claim', 'verdict', 'evidence'],
      claims.map((c) => [c.claim, `**${c.verdict}**`, c.evidence]),
    ),
    '',
    `Files: \`results.json\` (settings, every run's curves, metrics, variance ratios; the summaries and ` +
      `verdicts) and the SVG charts. The BNs keep unbiased running statistics with momentum ${o.bnMomentum} ` +
      "(PyTorch's default; 0.99, the Keras default, would still carry a visible part of the initial " +
      'moving variance 1 after a few hundred steps). Even so the ratio also carries the lag of the ' +
      'running average behind the last weights; `bn` (no dropout) shows how large that part is.',
  ].join('\n');
  return {
    markdown,
    results: {
      settings: { ...o, seedsUsed: input.seeds, backend, tfjs: tf.version.tfjs },
      seconds: input.seconds,
      configs: summaries,
      claims,
      runs: input.runs,
    },
    charts: charts(input),
  };
}
