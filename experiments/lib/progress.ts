/**
 * Progress of a long run on stderr (stdout stays clean for tables and data), readable both in a
 * terminal and in a log file:
 *
 * - on a TTY, a one-line bar redrawn in place;
 * - anywhere else (a log file, CI, a pipe), plain lines: one at every configuration boundary
 *   ({@link Progress.boundary}) and at least one every 30 s while work goes on, each saying what is
 *   running, done/total, the elapsed time and the estimated time left.
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
  private current = 0;
  private status = '';
  private lastDraw = 0;
  private lastLine: number;
  private readonly start = Date.now();
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly timer: NodeJS.Timeout | null = null;

  constructor(
    readonly total: number,
    private readonly options: ProgressOptions,
  ) {
    this.stream = options.stream ?? process.stderr;
    this.style = options.style ?? progressStyle(this.stream);
    this.lastLine = this.start;
    if (this.style === 'lines') {
      // Fires while the work runs elsewhere (worker processes) or yields to the event loop; a
      // synchronous stretch of tfjs work is covered by the check in tick().
      const every = Math.min(this.interval, 5_000);
      this.timer = setInterval(() => this.lineIfDue(), every);
      this.timer.unref();
    }
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
    this.current = Math.min(current, this.total);
    if (status) this.status = status;
    if (this.style === 'bar') this.drawBar(false);
    else if (this.style === 'lines') this.lineIfDue();
  }

  /** A configuration boundary: prints a plain line now (the bar just shows the status). */
  boundary(status: string): void {
    this.status = status;
    if (this.style === 'lines') this.line();
    else if (this.style === 'bar') this.drawBar(true);
  }

  /** Draws the final state and stops the timer. */
  done(status = 'done'): void {
    if (this.timer) clearInterval(this.timer);
    this.current = this.total;
    this.status = status;
    if (this.style === 'bar') {
      this.drawBar(true);
      this.stream.write('\n');
    } else if (this.style === 'lines') {
      this.line();
    }
  }

  /** "12/27 (44%) elapsed 1m05s ETA 1m22s" */
  private counts(): string {
    const fraction = this.total > 0 ? this.current / this.total : 1;
    const elapsed = (Date.now() - this.start) / 1000;
    // Below 5% done the rate is mostly start-up time: no estimate yet.
    const eta =
      fraction >= 0.05 && fraction < 1 ? ` ETA ${duration(elapsed / fraction - elapsed)}` : '';
    return `${this.current}/${this.total} (${Math.floor(fraction * 100)}%) elapsed ${duration(elapsed)}${eta}`;
  }

  private lineIfDue(): void {
    if (Date.now() - this.lastLine >= this.interval) this.line();
  }

  private line(): void {
    this.lastLine = Date.now();
    const status = this.status ? `${this.status} | ` : '';
    this.stream.write(`[${this.options.label}] ${status}${this.counts()}\n`);
  }

  private drawBar(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < (this.options.throttleMs ?? 100)) return;
    this.lastDraw = now;
    const width = 24;
    const filled = Math.round((this.total > 0 ? this.current / this.total : 1) * width);
    const text =
      `${this.options.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.counts()}` +
      (this.status ? ` ${this.status}` : '');
    const columns = this.stream.columns ?? (Number(process.env.COLUMNS) || 100);
    this.stream.write(`\r${text.slice(0, columns - 1).padEnd(columns - 1)}`);
  }
}
