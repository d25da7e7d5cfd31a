import type { Blocking } from "../consul/client.ts";

export interface BlockingWatch<T> {
  /** One blocking query from `index` ("0": answer at once). */
  query: (index: string) => Promise<Blocking<T>>;
  /** An answer (which may be unchanged: compare contents). A failure here counts as a failed query. */
  onAnswer: (value: T) => Promise<void>;
  /** A failed query; the watch backs off, then asks again. */
  onError: (e: unknown) => void;
  /** Ends the watch. */
  signal: AbortSignal;
  /** Backoff after failures in a row: doubles from the first to the last (ms), with jitter. */
  backoffMs: readonly [number, number];
}

/**
 * Runs a Consul blocking query until `signal` aborts: each answer's index is the next query's
 * (reset to 0 when it goes backwards, as Consul's docs ask); a failure backs off, so a
 * Consul that is down is not hammered while the caller serves its last view.
 */
export async function watchBlocking<T>(w: BlockingWatch<T>): Promise<void> {
  let index = "0";
  let failures = 0;
  while (!w.signal.aborted) {
    try {
      const r = await w.query(index);
      index = Number(r.index) < Number(index) ? "0" : r.index;
      failures = 0;
      await w.onAnswer(r.value);
    } catch (e) {
      if (w.signal.aborted) return;
      failures++;
      w.onError(e);
      await backoff(failures, w.backoffMs, w.signal);
    }
  }
}

function backoff(failures: number, [min, max]: readonly [number, number], signal: AbortSignal): Promise<void> {
  const ms = Math.min(max, min * 2 ** Math.min(failures - 1, 10)) * (0.5 + Math.random() / 2);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
