/**
 * The vanishing-gradient report: the results table, the charts, `report.md` and the
 * `results.json` content.
 */
import { barChart, lineChart, LinePoint, smallMultiples, VegaLiteSpec } from '../lib/charts';
import { fmt, markdownTable, pct } from '../lib/report';
import { BN_MOMENTUM, CLIP_NORM, CONFIGS, EXPLODING_GAIN } from './configs';
import { THRESHOLDS } from './interpret';
import { compare, showInterval, stat } from '../lib/stats';
import { PLATEAU, Result, TrainSettings } from './run';

/** What the report needs from a finished run. */
export interface ReportInput {
  results: readonly Result[];
  interpretation: readonly string[];
  settings: TrainSettings & {
    optimizer: string;
    trainDigits: number;
    validationDigits: number;
    heldOutDigits: number;
    probeBatch: number;
    seeds: number;
    quick: boolean;
    backend: string;
    tfjs: string;
  };
  totalSeconds: number;
}

function table(results: readonly Result[]): { header: string[]; rows: (string | number)[][] } {
  const header = [
    'config',
    'ratio init',
    'ratio trained',
    'max ‖g‖',
    'peak loss',
    'final loss',
    'held-out acc (mean over seeds)',
    'saturated init→trained',
    'dead init→trained',
    'seconds',
  ];
  const rows = results.map((r) => [
    r.name,
    r.ratioInit,
    r.ratioFinal,
    r.nonFiniteGrad ? `${fmt(r.maxGradNorm)}, NaN` : r.maxGradNorm,
    r.nonFiniteLoss ? `${fmt(r.peakLoss)}, NaN` : r.peakLoss,
    r.finalLoss,
    pct(r.heldOutAccuracy),
    r.saturatedInit === null ? '–' : `${pct(r.saturatedInit)} → ${pct(r.saturatedFinal)}`,
    r.deadInit === null ? '–' : `${pct(r.deadInit)} → ${pct(r.deadFinal)}`,
    r.seconds.toFixed(1),
  ]);
  return { header, rows };
}

/** "32 of 33 runs stopped on the plateau rule (3–35 epochs); the 40-epoch budget ended …" */
export function convergence(results: readonly Result[], budget: number, firstSeed: number): string {
  const runs = results.flatMap((r) => r.stoppedBySeeds.map((by, k) => ({ r, by, k })));
  const plateau = runs.filter((x) => x.by === 'plateau');
  const epochs = plateau.map((x) => x.r.epochsRunSeeds[x.k]);
  const budgetHit = runs
    .filter((x) => x.by === 'budget')
    .map((x) => `${x.r.name} seed ${firstSeed + x.k}`);
  return (
    `${plateau.length} of ${runs.length} runs stopped on the plateau rule` +
    (epochs.length ? ` (${Math.min(...epochs)}–${Math.max(...epochs)} epochs)` : '') +
    (budgetHit.length
      ? `; the ${budget}-epoch budget ended ${budgetHit.join(', ')} (not converged).`
      : '; none reached the epoch budget.')
  );
}

/**
 * Held-out accuracy over seeds, best mean first, each row compared with the next by a 95% paired t
 * interval (same seed: same split and initial weights): a ranking only where the test separates.
 */
export function rankingTable(results: readonly Result[]): {
  header: string[];
  rows: string[][];
} {
  const sorted = [...results].sort((a, b) => b.heldOutAccuracy - a.heldOutAccuracy);
  const header = [
    'config',
    'held-out acc, mean ± std',
    'epochs run per seed (* = budget reached)',
    'BN before recalibration',
    'vs the next row (95% paired t)',
  ];
  const rows = sorted.map((r, i) => {
    const a = stat(r.heldOutAccuracySeeds);
    const next = sorted[i + 1];
    let versus = '–';
    if (next) {
      const c = compare(a, stat(next.heldOutAccuracySeeds), 'higher');
      versus = c.singleSeed
        ? 'one seed: not separated'
        : `${c.verdict === 'better' ? '**higher**' : 'not separated'}: Δ ${fmt(c.delta)} ` +
          showInterval(c.ci);
    }
    return [
      r.name,
      a.n > 1 ? `${pct(a.mean)} ± ${pct(a.std)}` : pct(a.mean),
      r.epochsRunSeeds.map((e, k) => (r.stoppedBySeeds[k] === 'budget' ? `${e}*` : e)).join(', '),
      r.heldOutAccuracyBeforeRecalibration === null
        ? '–'
        : `${pct(r.heldOutAccuracyBeforeRecalibration)} (first seed)`,
      versus,
    ];
  });
  return { header, rows };
}

function charts(input: ReportInput): Record<string, VegaLiteSpec> {
  const { results, settings } = input;
  const gradChart = (key: 'gradInit' | 'gradFinal', when: string) =>
    lineChart(
      results.flatMap((r) => r[key].map((y, l): LinePoint => ({ series: r.name, x: l + 1, y }))),
      {
        title: `‖∂L/∂W⁽ˡ⁾‖ per layer ${when} (depth ${settings.depth}, width ${settings.width})`,
        xTitle: 'layer l (1 = input side)',
        yTitle: 'kernel gradient norm (log)',
        logY: true,
        points: true,
        width: 620,
        height: 380,
      },
    );
  const lossPoints: LinePoint[] = results.flatMap((r) =>
    r.lossPerBatch.map((y, s) => ({ series: r.name, x: s + 1, y })),
  );
  return {
    'grad-norms-init': gradChart('gradInit', 'at initialization'),
    'grad-norms-trained': gradChart('gradFinal', 'after training'),
    'loss-curves': smallMultiples(
      lineChart(lossPoints, {
        xTitle: 'step',
        yTitle: 'training loss (log)',
        logY: true,
        points: 4,
      }),
      'series',
      {
        columns: 4,
        independentY: true,
        title: 'Training loss per batch (own y scale per panel; non-finite values not drawn)',
      },
    ),
    accuracy: barChart(
      results.map((r) => ({ category: r.name, value: r.heldOutAccuracy })),
      { title: 'Held-out accuracy', yTitle: 'accuracy' },
    ),
  };
}

/** The table, report.md, results.json and the charts of a run. */
export function vanishingGradientReport(input: ReportInput): {
  table: { header: string[]; rows: (string | number)[][] };
  markdown: string;
  results: unknown;
  charts: Record<string, VegaLiteSpec>;
} {
  const { results, settings, interpretation, totalSeconds } = input;
  const t = table(results);
  const markdown = [
    '# Vanishing and exploding gradients',
    '',
    `Generated by \`npm run experiment:vanishing-gradient\`${settings.quick ? ' with `--quick`' : ''} ` +
      `on the ${settings.backend} backend (tfjs ${settings.tfjs}) in ${totalSeconds.toFixed(0)} s. ` +
      'Every number below comes from this run; `results.json` holds all of them.',
    '',
    '## Setup',
    '',
    `- Data: ${settings.trainDigits} training, ${settings.validationDigits} validation and ` +
      `${settings.heldOutDigits} held-out MNIST digits (the \`mnist\` package), class-balanced, ` +
      'disjoint, split by each seed. The validation digits only decide when to stop; accuracies ' +
      'are on the held-out digits at the last epoch trained.',
    `- Network: ${settings.depth} Dense layers — ${settings.depth - 1} hidden of ${settings.width} ` +
      'units and a softmax output — under each configuration below; categorical cross-entropy.',
    `- Training: until the validation loss has not improved on its best by ${PLATEAU.minDelta} ` +
      `for ${PLATEAU.patience} epochs (a plateau), at most ${settings.epochs} epochs; batch ` +
      `${settings.batchSize}, ${settings.optimizer}; ${settings.seeds} seed(s) from ${settings.seed}. ` +
      `${convergence(input.results, settings.epochs, settings.seed)} The per-layer diagnostics, charts and the ` +
      'first table are from the first seed.',
    `- Diagnostics on a fixed probe batch of ${settings.probeBatch} training digits: ` +
      '`gradientNorms` (training-mode forward, state restored) and the `GradientFlow` callback ' +
      'after every epoch. *ratio* = ‖∂L/∂W⁽¹⁾‖ / ‖∂L/∂W⁽ᴸ⁾‖ (first over last Dense kernel). ' +
      '*saturated*: share of sigmoid/tanh outputs with |f′| < 0.01; *dead*: share of ReLU units ' +
      'that output 0 for every probe digit (means over layers).',
    '',
    ...CONFIGS.map((c) => `  - \`${c.name}\`: ${c.description}`),
    '',
    '## Results',
    '',
    markdownTable(t.header, t.rows),
    '',
    `## Held-out accuracy over ${settings.seeds} seed${settings.seeds > 1 ? 's' : ''}, ranked only where a paired test separates`,
    '',
    'Best mean first; each row is compared with the next, seed by seed (a seed fixes the split and ' +
      'the initial weights), by the 95% paired t interval of the difference. "not separated": the ' +
      'order of those two rows is not established. Nets with BN (moving-average momentum ' +
      `${BN_MOMENTUM}) are evaluated after \`recalibrateBatchNorm\` on the training digits; the ` +
      'number before it is shown for the first seed.',
    '',
    markdownTable(rankingTable(results).header, rankingTable(results).rows),
    '',
    '## Interpretation (generated from the numbers above)',
    '',
    ...interpretation,
    '',
    '## Charts',
    '',
    '![gradient norms at init](grad-norms-init.svg)',
    '',
    '![gradient norms after training](grad-norms-trained.svg)',
    '',
    '![loss curves](loss-curves.svg)',
    '',
    '![held-out accuracy](accuracy.svg)',
    '',
    '## Notes',
    '',
    '- `exploding` and `exploding+clip` start from the same weights, so their lines coincide in ' +
      'the initialization chart.',
    '- Dropout is the pack’s `layers.dropout` with a seed per layer: its masks are a reproducible ' +
      'sequence, new at every step (a seeded `tf.layers.dropout` would repeat one mask).',
    '- Results with `--quick` use a narrower net, fewer digits and epochs; the gradient ratios at ' +
      'initialization depend little on that, accuracies a lot.',
    ...results.filter((r) => r.error).map((r) => `- \`${r.name}\` stopped early: ${r.error}`),
  ].join('\n');
  return {
    table: t,
    markdown,
    results: {
      settings: {
        ...settings,
        thresholds: THRESHOLDS,
        explodingGain: EXPLODING_GAIN,
        clipNorm: CLIP_NORM,
      },
      totalSeconds,
      interpretation,
      configs: results,
    },
    charts: charts(input),
  };
}
