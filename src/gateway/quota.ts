/** Buckets kept at most (least recently used forgotten first: a forgotten bucket starts full). @default 100000 */
export const MAX_BUCKETS = 100_000;

/**
 * Token buckets for the gateway's quotas, in this replica's memory. Not shared through
 * Consul on purpose: a CAS write per call would put Consul's raft leader on the hot path of
 * every call (and stall calls during an election). With N replicas behind a balancer a caller
 * gets up to N times its limit; set limits per replica (docs/security.md#quotas).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly now: () => number;

  constructor(o: { now?: () => number } = {}) {
    this.now = o.now ?? (() => performance.now());
  }

  /**
   * Takes one token from the bucket `key` (capacity `limit`, refilled at `ratePerMs`): ok, or
   * how long until one is there.
   */
  take(key: string, limit: number, ratePerMs: number): { ok: true; left: number } | { ok: false; retryAfterMs: number } {
    const now = this.now();
    const held = this.buckets.get(key);
    const tokens = held ? Math.min(limit, held.tokens + (now - held.at) * ratePerMs) : limit;
    this.buckets.delete(key); // re-inserted last: the Map's order is the LRU order
    if (tokens >= 1) {
      this.buckets.set(key, { tokens: tokens - 1, at: now });
      if (this.buckets.size > MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
      return { ok: true, left: Math.floor(tokens - 1) };
    }
    this.buckets.set(key, { tokens, at: now });
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil((1 - tokens) / ratePerMs)) };
  }
}
