/**
 * A one-line progress bar on stderr, so stdout stays clean for tables and data. Quiet (prints
 * nothing) when stderr is not a TTY: CI logs and test runs get no control characters.
 *
 * ```ts
 * const bar = new ProgressBar(configs.length * epochs, { label: 'training' });
 * bar.tick(1, 'sigmoid epoch 3'); ... bar.done();
 * ```
 */

/** Options of {@link ProgressBar}. */
export interface ProgressBarOptions {
  /** Text before the bar. */
  label?: string;
  /** Bar width in characters (default 28). */
  width?: number;
  /** Stream (default process.stderr). */
  stream?: NodeJS.WriteStream;
  /** Force on or off; default: on iff the stream is a TTY. */
  enabled?: boolean;
  /** Minimum milliseconds between redraws (default 100). */
  throttleMs?: number;
}

/** See the module doc. */
export class ProgressBar {
  private current = 0;
  private lastDraw = 0;
  private readonly start = Date.now();
  private readonly stream: NodeJS.WriteStream;
  readonly enabled: boolean;

  constructor(
    readonly total: number,
    private readonly options: ProgressBarOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.enabled = options.enabled ?? Boolean(this.stream.isTTY);
  }

  /** Advances by `steps` and redraws (throttled) with an optional status text. */
  tick(steps = 1, status = ''): void {
    this.update(this.current + steps, status);
  }

  /** Sets the position and redraws (throttled). */
  update(current: number, status = ''): void {
    this.current = Math.min(current, this.total);
    const now = Date.now();
    if (now - this.lastDraw < (this.options.throttleMs ?? 100) && this.current < this.total) return;
    this.lastDraw = now;
    this.draw(status);
  }

  /** Draws the final state and ends the line. */
  done(status = ''): void {
    if (!this.enabled) return;
    this.current = this.total;
    this.draw(status);
    this.stream.write('\n');
  }

  private draw(status: string): void {
    if (!this.enabled) return;
    const width = this.options.width ?? 28;
    const fraction = this.total > 0 ? this.current / this.total : 1;
    const filled = Math.round(fraction * width);
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = fraction > 0 ? elapsed / fraction - elapsed : NaN;
    const label = this.options.label ? `${this.options.label} ` : '';
    const line =
      `${label}[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` +
      `${this.current}/${this.total} ${elapsed.toFixed(0)}s` +
      (Number.isFinite(eta) && fraction < 1 ? ` eta ${eta.toFixed(0)}s` : '') +
      (status ? ` ${status}` : '');
    const columns = this.stream.columns ?? 100;
    this.stream.write(`\r${line.slice(0, columns - 1).padEnd(columns - 1)}`);
  }
}
