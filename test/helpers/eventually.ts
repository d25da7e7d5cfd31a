/**
 * Polls `fn` until it returns a truthy value (or stops throwing) within a bounded
 * deadline, for real systems that must converge (STYLE.md rule 13). Returns that value
 * and how long it took.
 */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  options: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<{ value: NonNullable<T>; elapsedMs: number }> {
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
    if (performance.now() - started > options.timeoutMs) {
      throw new Error(
        `Timed out after ${options.timeoutMs} ms waiting for ${options.what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}

/** Awaits `promise`, failing with a message naming the step if it takes longer than `ms`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
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
    if (performance.now() - started > ms / 2) console.warn(`slow step: ${what} took ${Math.round(performance.now() - started)} ms`);
  }
}

/** Waits until a caller's catalog has `count` healthy instances of `agent` (5 s at most). */
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
