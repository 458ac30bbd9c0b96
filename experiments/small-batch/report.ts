/** The small-batch experiment's report: charts, `report.md` and the `results.json` content. */
import * as tf from '@tensorflow/tfjs';
import { barChart, VegaLiteSpec } from '../lib/charts';
import {
  fmt,
  generatedLine,
  markdownTable,
  mnistSplitBullet,
  pct,
  pooledInputText,
} from '../lib/report';
import { Stat } from '../lib/stats';
import { Claim, meanOverBns, RECALIBRATED, Summary } from './analysis';
import {
  CONFIGS,
  describeConfig,
  NormKind,
  RECALIBRATED_LABEL,
  renormRamp,
  Setting,
} from './configs';
import type { Options } from './options';
import type { SmallBatchRun } from './train';

/** What the report needs from a finished run. */
export interface ReportInput {
  o: Options;
  seeds: readonly number[];
  settings: readonly Setting[];
  backend: string;
  backendReason: string;
  seconds: number;
  summaries: readonly Summary[];
  claims: readonly Claim[];
  runs: readonly SmallBatchRun[];
}

const showPct = (s: Stat) => (s.n > 1 ? `${pct(s.mean)} ± ${pct(s.std)}` : pct(s.mean));

/** The labels of the rows, in report order (the recalibrated evaluation right after pack BN). */
function rowOrder(summaries: readonly Summary[]): { config: string; label: string }[] {
  const seen = new Map<string, string>();
  for (const s of summaries) if (!seen.has(s.config)) seen.set(s.config, s.label);
  const order = CONFIGS.flatMap((c) => (c.id === 'bn' ? [c.id, RECALIBRATED] : [c.id])) as string[];
  return order.filter((id) => seen.has(id)).map((id) => ({ config: id, label: seen.get(id)! }));
}

/** A table with one row per configuration and one column per setting. */
function settingTable(
  summaries: readonly Summary[],
  settings: readonly Setting[],
  cell: (s: Summary) => string | null,
): { header: string[]; rows: string[][] } {
  const rows = rowOrder(summaries)
    .map(({ config, label }) => [
      label,
      ...settings.map((st) => {
        const s = summaries.find((x) => x.setting === st.id && x.config === config);
        return s ? (cell(s) ?? '–') : '–';
      }),
    ])
    .filter((row) => row.slice(1).some((c) => c !== '–'));
  return { header: ['configuration', ...settings.map((s) => s.label)], rows };
}

/** Held-out accuracy, mean ± std over seeds, per configuration and setting. */
export function accuracyTable(summaries: readonly Summary[], settings: readonly Setting[]) {
  return settingTable(summaries, settings, (s) => showPct(s.heldOutAcc));
}

// vega's tableau10 scheme, so a configuration keeps its color in every chart.
const TABLEAU10 = [
  '#4c78a8',
  '#f58518',
  '#e45756',
  '#72b7b2',
  '#54a24b',
  '#eeca3b',
  '#b279a2',
  '#ff9da6',
  '#9d755d',
  '#bab0ac',
];

function charts(input: ReportInput): Record<string, VegaLiteSpec> {
  const { summaries } = input;
  const seeds = input.seeds.length;
  const wide = { config: { axis: { labelLimit: 320 }, legend: { labelLimit: 320 } } };
  const bars = (value: (s: Summary) => Stat | null, only: (s: Summary) => boolean) =>
    summaries
      .filter(only)
      .map((s) => ({ s, v: value(s) }))
      .filter((x): x is { s: Summary; v: Stat } => x.v !== null)
      .map(({ s, v }) => ({
        category: s.settingLabel,
        group: s.label,
        value: v.mean,
        error: v.std,
      }));
  const withBn = (s: Summary) => s.bn.length > 0;
  // One color per configuration across the charts, in report order, whichever settings it ran in.
  const order = rowOrder(summaries).map((r) => r.label);
  const fixedColors = (spec: VegaLiteSpec): VegaLiteSpec => {
    const values = (spec.data as { values: { group: string }[] }).values;
    const domain = order.filter((label) => values.some((v) => v.group === label));
    const range = domain.map((label) => TABLEAU10[order.indexOf(label) % TABLEAU10.length]);
    for (const layer of spec.layer as { encoding: Record<string, Record<string, unknown>> }[]) {
      if (layer.encoding.xOffset) layer.encoding.xOffset.sort = domain;
      if (layer.encoding.color) {
        layer.encoding.color.sort = domain;
        layer.encoding.color.scale = { domain, range };
      }
    }
    return spec;
  };
  const grouped = (spec: VegaLiteSpec): VegaLiteSpec => ({ ...fixedColors(spec), ...wide });
  return {
    held_out_accuracy: grouped(
      barChart(
        bars(
          (s) => s.heldOutAcc,
          () => true,
        ),
        {
          title: `Held-out accuracy by batch size and stream (mean ± std over ${seeds} seed(s))`,
          yTitle: 'held-out accuracy',
          width: 640,
        },
      ),
    ),
    variance_ratio: grouped(
      barChart(
        bars((s) => s.bn[s.bn.length - 1]?.varianceRatio ?? null, withBn),
        {
          title: 'Running / population variance at the dense BN (1 = right)',
          yTitle: 'variance ratio',
          width: 640,
        },
      ),
    ),
    train_inference_gap: grouped(
      barChart(
        bars((s) => meanOverBns(s, 'gap'), withBn),
        {
          title: 'Train/inference output gap, mean over the BNs (0 = same output)',
          yTitle: '‖y_train − y_inference‖ / ‖y_inference − β‖',
          width: 640,
        },
      ),
    ),
  };
}

/** report.md, results.json and the charts of a run. */
export function smallBatchReport(input: ReportInput): {
  markdown: string;
  results: unknown;
  charts: Record<string, VegaLiteSpec>;
} {
  const { o, summaries, settings, claims, backend } = input;
  const acc = accuracyTable(summaries, settings);
  const perBn = (key: 'varianceRatio' | 'gap') =>
    settingTable(summaries, settings, (s) =>
      s.bn.length ? s.bn.map((b) => fmt(b[key].mean)).join(' / ') : null,
    );
  const ratio = perBn('varianceRatio');
  const gap = perBn('gap');
  const pool = pooledInputText(o.inputPool);
  const ramp = renormRamp(o.steps);
  const kinds = CONFIGS.map((c) => c.id).filter((id) => summaries.some((s) => s.config === id));
  const markdown = [
    '# Small batches and non-i.i.d. batches: BatchNorm, Batch Renorm, Ghost BN, GroupNorm, LayerNorm',
    '',
    generatedLine('small-batch', { ...input, quick: o.quick, tfjs: tf.version.tfjs }),
    '',
    '## Setup',
    '',
    mnistSplitBullet(o, input.seeds),
    `- Network: ${pool}Conv 3×3 (${o.filters1}) → [norm] → ReLU → MaxPool → Conv 3×3 (${o.filters2}) → ` +
      `[norm] → ReLU → MaxPool → Dense (${o.dense}) → [norm] → ReLU → Dense (10) softmax; the layers ` +
      'before a BN have no bias. Within a seed every configuration starts from the same kernels and ' +
      'sees the same batches.',
    `- Training: Adam (learning rate ${o.learningRate}), ${o.steps} steps whatever the batch size, so ` +
      `the samples seen differ: ${settings
        .filter((s) => s.stream === 'iid')
        .map((s) => `${(o.steps * s.batchSize).toLocaleString('en-US')} at batch ${s.batchSize}`)
        .join(', ')} (compare configurations within a column, not across batch sizes). Settings: ` +
      settings
        .map((s) =>
          s.stream === 'iid'
            ? `${s.label} (i.i.d.)`
            : `${s.label} (each batch: ${s.batchSize / 2} digits of each of two random classes, shuffled)`,
        )
        .join(', ') +
      '.',
    `- BN momentum ${o.bnMomentum} everywhere. Batch Renorm ramps its clipping from plain BN to ` +
      `r_max = ${o.rmax}, d_max = ${o.dmax}: plain until step ${ramp.start}, d_max reached at step ` +
      `${ramp.dmaxEnd}, r_max at ${ramp.rmaxEnd} (the proportions of the paper's schedule). Ghost BN ` +
      `only runs where the batch holds several virtual batches of ${o.virtualBatchSize}.`,
    '- After training, in inference mode: held-out accuracy; at every BN the running variance ' +
      'divided by the population variance of its input over the held-out digits (mean over ' +
      'channels; 1 = right); and the train/inference output gap ‖y_train − y_inference‖ / ' +
      `‖y_inference − β‖ of that BN alone on ${o.gapBatches} held-out batches drawn like the training ` +
      "batches (0 = the BN computes in training what it computes at inference). For the pack's BN, " +
      'the same after `recalibrateBatchNorm(model, trainDigits)`.',
    '',
    markdownTable(
      ['configuration', 'between each linear layer and its ReLU'],
      [
        ...kinds.map((k) => [
          CONFIGS.find((c) => c.id === k)?.label ?? k,
          describeConfig(k as NormKind, o),
        ]),
        ...(summaries.some((s) => s.config === RECALIBRATED)
          ? [
              [
                RECALIBRATED_LABEL,
                "the pack's BN net, statistics recomputed on the training digits",
              ],
            ]
          : []),
      ],
    ),
    '',
    '## Held-out accuracy',
    '',
    `Mean ± sample std over ${input.seeds.length} seed(s).`,
    '',
    markdownTable(acc.header, acc.rows),
    '',
    '![held-out accuracy](held_out_accuracy.svg)',
    '',
    '## Running / population variance at each BN',
    '',
    'Conv BN 1 / conv BN 2 / dense BN (means over seeds). The dense BN reduces over the batch only ' +
      '(m = batch size values per channel), the conv BNs over batch × height × width.',
    '',
    markdownTable(ratio.header, ratio.rows),
    '',
    '![variance ratio](variance_ratio.svg)',
    '',
    '## Train/inference output gap at each BN',
    '',
    'Conv BN 1 / conv BN 2 / dense BN (means over seeds).',
    '',
    markdownTable(gap.header, gap.rows),
    '',
    '![train/inference gap](train_inference_gap.svg)',
    '',
    '## Claims and verdicts',
    '',
    '_Generated from the numbers above._ Two configurations are compared seed by seed (same split, ' +
      `kernels and batches; ${input.seeds.length} seeds): one is higher or lower when the 95% paired t ` +
      'interval of the mean per-seed difference excludes 0; otherwise "not separated". A claim of ' +
      '"the same" holds only as "not separated", which is not a proof of equality.' +
      (input.seeds.length < 2
        ? ' With a single seed there is no interval: nothing separates.'
        : ''),
    '',
    markdownTable(
      ['claim', 'verdict', 'evidence'],
      claims.map((c) => [c.claim, `**${c.verdict}**`, c.evidence]),
    ),
    '',
    '_A derivation, not a measurement, that bears on the renorm claims at batch 2:_ the dense BN ' +
      'reduces over the batch only, so with 2 samples x̂ = ±σ_B/√(σ²_B+ε) ≈ ±1 whatever the inputs. ' +
      'Renorm restores the information in the forward pass (x̂·r + d = (x − μ)/σ when unclipped), but its ' +
      'gradient treats r and d as constants and is that of x̂: dx₁ = γ·r/√(σ²_B+ε) · ε/(σ²_B+ε) · ' +
      '(dy₁ − dy₂)/2, which vanishes unless σ²_B ≲ ε. The conv BNs reduce over batch × height × ' +
      'width values and do not have this problem.',
    '',
    'Files: `results.json` (settings, every run, the summaries and verdicts) and the SVG charts. ' +
      `The BNs average with momentum ${o.bnMomentum}: with 0.99 (the Keras default) ${o.steps} steps ` +
      `would leave ${pct(0.99 ** o.steps)} of the initial moving variance 1 in the running variance, ` +
      'which would hide the Bessel factor this experiment measures. Batch Renorm takes r and d ' +
      'against its moving statistics (no `renormMomentum`: the single set of averages of the ' +
      "paper's Algorithm 1), so an unclipped renorm BN computes in training exactly what it " +
      'computes at inference, and its train/inference gap measures how often the clipping binds.',
  ].join('\n');
  return {
    markdown,
    results: {
      settings: { ...o, seedsUsed: input.seeds, backend, tfjs: tf.version.tfjs },
      trainingSettings: settings,
      seconds: input.seconds,
      summaries,
      claims,
      runs: input.runs,
    },
    charts: charts(input),
  };
}
