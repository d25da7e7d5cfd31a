/**
 * Runs a tool-list fetch within the tools deadline (`timeoutMs`), or until `stop` (the
 * catalog stopped); running out of time is an error that says which limit it was.
 */
export async function toolsWithin<T>(timeoutMs: number, stop: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([deadline, stop]);
  try {
    return await fn(signal);
  } catch (e) {
    if (deadline.aborted) throw new Error(`no answer to tools/list within ${timeoutMs} ms`, { cause: e });
    throw e;
  }
}

/** The tools hash most instances publish (during a rolling upgrade they may differ). */
export function majorityHash(instances: readonly { meta: Record<string, string> }[]): string | undefined {
  const counts = new Map<string, number>();
  for (const i of instances) {
    const h = i.meta["tools_hash"];
    if (h) counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** Where to fetch an agent's tools from, in order: the instances that publish `hash` first, then by id. */
export function toolSources<I extends { id: string; meta: Record<string, string> }>(
  instances: readonly I[],
  hash: string | undefined,
): I[] {
  return [...instances].sort(
    (a, b) => Number(b.meta["tools_hash"] === hash) - Number(a.meta["tools_hash"] === hash) || a.id.localeCompare(b.id),
  );
}
