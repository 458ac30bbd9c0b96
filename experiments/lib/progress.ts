/**
 * Progress of a long run on stderr (stdout stays clean for tables and data), drawn by
 * `cli-progress`, readable both in a terminal and in a log file:
 *
 * - on a TTY, a one-line bar redrawn in place;
 * - anywhere else (a log file, CI, a pipe), plain lines (cli-progress's `noTTYOutput`): one when
 *   the run starts, one at every configuration boundary ({@link Progress.boundary}) and at least
 *   one every 30 s while work goes on, each saying what is running, done/total, the elapsed time
 *   and the estimated time left.
 *
 * ```ts
 * const progress = new Progress(configs.length * epochs, { label: 'overfitting' });
 * progress.boundary('seed 1 dropout');  // a new configuration starts
 * progress.tick(1, 'seed 1 dropout epoch 3');
 * progress.done();
 * ```
 *
 * `npm run experiments` runs each experiment with its stderr piped through, and tells it with
 * `DROPNORM_PROGRESS=bar|lines` which style its own stderr calls for.
 */
import { SingleBar } from 'cli-progress';

/** How progress is shown. */
export type ProgressStyle = 'bar' | 'lines' | 'off';

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** What runs, first on every line (e.g. the experiment's name). */
  label: string;
  /** Stream (default process.stderr). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Default: `DROPNORM_PROGRESS` if set, else 'bar' on a TTY and 'lines' elsewhere. */
  style?: ProgressStyle;
  /** Longest silence between two plain lines, in ms (default 30 000). */
  intervalMs?: number;
  /** Minimum ms between two redraws of the bar (default 100). */
  throttleMs?: number;
}

/** The style for `stream`: `DROPNORM_PROGRESS` wins, else bar on a TTY and lines elsewhere. */
export function progressStyle(
  stream: { isTTY?: boolean } = process.stderr,
  env: Record<string, string | undefined> = process.env,
): ProgressStyle {
  const forced = env.DROPNORM_PROGRESS;
  if (forced === 'bar' || forced === 'lines' || forced === 'off') return forced;
  return stream.isTTY ? 'bar' : 'lines';
}

/** `75` → "1m15s", `8.2` → "8s". */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** See the module doc. */
export class Progress {
  readonly style: ProgressStyle;
  private status = '';
  private current = 0;
  private lastLine = Date.now();
  private readonly start = Date.now();
  private readonly bar: SingleBar | null = null;

  constructor(
    readonly total: number,
    private readonly options: ProgressOptions,
  ) {
    const stream = options.stream ?? process.stderr;
    this.style = options.style ?? progressStyle(stream);
    if (this.style === 'off') return;
    const tty = this.style === 'bar';
    this.bar = new SingleBar({
      // cli-progress picks bar or lines by isTTY: the style (DROPNORM_PROGRESS) decides instead.
      // A plain line is never cut (cli-progress cuts at `columns`, default 200).
      stream: {
        // Without the cursor save/restore of start()/stop(): other lines printed while the bar
        // runs (the backend, warnings) would make stop() jump back over them.
        write: (s: string) => stream.write(s.split('\u001b7').join('').split('\u001b8').join('')),
        isTTY: tty,
        columns: tty ? stream.columns : Infinity,
      } as never,
      format: (_options, params) => this.text(params.value),
      noTTYOutput: !tty,
      notTTYSchedule: this.interval,
      fps: 1000 / (options.throttleMs ?? 100),
      clearOnComplete: !tty, // else a blank line after the last plain line
      gracefulExit: false, // keep Ctrl-C's default: end the run
      linewrap: true, // cut the bar at the width, never turn wrapping off (a crash would leave it off)
    });
    this.bar.on('redraw-post', () => (this.lastLine = Date.now()));
    this.bar.start(total, 0);
  }

  private get interval(): number {
    return this.options.intervalMs ?? 30_000;
  }

  /** Advances by `steps`, with an optional text saying what runs now. */
  tick(steps = 1, status = ''): void {
    this.update(this.current + steps, status);
  }

  /** Sets the position, with an optional text saying what runs now. */
  update(current: number, status = ''): void {
    if (status) this.status = status;
    this.current = Math.min(current, this.total);
    this.bar?.update(this.current);
    // The line timer cannot fire during a synchronous stretch of tfjs work: check here too.
    if (this.style === 'lines' && Date.now() - this.lastLine >= this.interval) this.bar?.render();
  }

  /** A configuration boundary: prints a plain line now (the bar just shows the status). */
  boundary(status: string): void {
    this.status = status;
    this.bar?.render();
  }

  /** Draws the final state and stops the timer. */
  done(status = 'done'): void {
    this.current = this.total;
    this.bar?.update(this.total);
    this.stop(status);
  }

  /** Draws where the run stands with `status` (e.g. 'failed') and stops the timer. */
  stop(status: string): void {
    this.status = status;
    this.bar?.stop();
  }

  /** "[label] status | 12/27 (44%) elapsed 1m05s ETA 1m22s", or the bar with the same counts. */
  private text(current: number): string {
    const fraction = this.total > 0 ? current / this.total : 1;
    const elapsed = (Date.now() - this.start) / 1000;
    // Below 5% done the rate is mostly start-up time: no estimate yet.
    const eta =
      fraction >= 0.05 && fraction < 1 ? ` ETA ${duration(elapsed / fraction - elapsed)}` : '';
    const counts = `${current}/${this.total} (${Math.floor(fraction * 100)}%) elapsed ${duration(elapsed)}${eta}`;
    if (this.style === 'lines')
      return `[${this.options.label}] ${this.status && `${this.status} | `}${counts}`;
    const filled = Math.round(fraction * 24);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(24 - filled)}`;
    return `${this.options.label} [${bar}] ${counts}${this.status && ` ${this.status}`}`;
  }
}
