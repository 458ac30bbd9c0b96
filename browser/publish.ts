/**
 * How a browser page hands its result to browser/harness.ts: `window.__dropnorm = { report }`, or
 * `{ error }` with the message and stack when the run throws (runPage waits for either).
 */

declare global {
  interface Window {
    __dropnorm?: { report?: unknown; error?: string };
  }
}

/**
 * Runs `run` and publishes its report (also as JSON in a `<pre>` on the page with `show`) or its
 * error on `window.__dropnorm`.
 */
export function publishReport(run: () => Promise<unknown>, options: { show?: boolean } = {}): void {
  run()
    .then((report) => {
      window.__dropnorm = { report };
      if (options.show) {
        const pre = document.createElement('pre');
        pre.textContent = JSON.stringify(report, null, 1);
        document.body.appendChild(pre);
      }
    })
    .catch((e: unknown) => {
      window.__dropnorm = { error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) };
    });
}
