import { readinessLoadFactor } from "../../orchestrator/launcher/readiness.ts";

/**
 * How much longer than on an idle machine a bounded wait in a test allows: twice, or the
 * machine's load per core when that is more (scripts/cpuhog.sh: the suite stays green with
 * every core busy). A wait that converges returns as soon as it does; only a wait that never
 * converges takes the whole bound. MESH_TEST_SLACK overrides it.
 */
export function slack(): number {
  const set = Number(process.env["MESH_TEST_SLACK"]);
  return Number.isFinite(set) && set > 0 ? set : Math.max(2, readinessLoadFactor());
}

/** `ms` as a bound for a wait in a test on this machine now (ms × slack()). */
export function bound(ms: number): number {
  return Math.round(ms * slack());
}

/**
 * Polls `fn` until it returns a truthy value (or stops throwing) within a bounded
 * deadline, for real systems that must converge (STYLE.md rule 13). Returns that value
 * and how long it took. `timeoutMs` is the bound on an idle machine; it is scaled by slack().
 */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  options: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<{ value: NonNullable<T>; elapsedMs: number }> {
  const timeoutMs = bound(options.timeoutMs);
  const started = performance.now();
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return { value: value as NonNullable<T>, elapsedMs: performance.now() - started };
      last = value;
    } catch (e) {
      last = e;
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(
        `Timed out after ${timeoutMs} ms waiting for ${options.what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}

/** Awaits `promise`, failing with a message naming the step if it takes longer than `ms` (scaled by slack()). */
export async function within<T>(idleMs: number, what: string, promise: Promise<T>): Promise<T> {
  const ms = bound(idleMs);
  let timer: NodeJS.Timeout | undefined;
  const started = performance.now();
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (performance.now() - started > idleMs) console.warn(`slow step: ${what} took ${Math.round(performance.now() - started)} ms`);
  }
}

/** Waits until a caller's catalog has `count` healthy instances of `agent` (5 s at most on an idle machine). */
export async function untilInstances(
  client: { catalog: { instances(agent: string): Promise<unknown[]> } },
  agent: string,
  count: number,
): Promise<void> {
  await eventually(async () => (await client.catalog.instances(agent)).length === count, {
    timeoutMs: 5_000,
    what: `${count} instance(s) of ${agent} in the catalog`,
  });
}
