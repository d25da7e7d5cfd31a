import type { CallOptions, ConsulClient } from "../consul/client.ts";
import { MeshError, isMeshError } from "../protocol/errors.ts";
import { currentFence, type Fence } from "./fence.ts";

/** A value and its version: Consul's ModifyIndex (0: no such key). */
export interface Versioned<T> {
  value: T | undefined;
  version: number;
}

/**
 * Small shared state with read-modify-write semantics. Replicas of one agent see the same
 * values (Consul KV, written with check-and-set), so task state stays consistent however
 * calls are spread across instances.
 */
export interface SharedState {
  get<T>(key: string, options?: CallOptions): Promise<T | undefined>;
  /**
   * Atomically replaces the value at `key` with `fn(current)`. `fn` may run more than once
   * (after losing a race) and must be pure; it may throw to abort (a business error).
   * Inside a call that holds an idempotency claim (a current Fence), the write commits only
   * while the claim is still this holder's, in one transaction with it.
   */
  update<T>(key: string, fn: (current: T | undefined) => T, options?: CallOptions): Promise<T>;
  /** The value at `key` with its version. */
  read<T>(key: string, options?: CallOptions): Promise<Versioned<T>>;
  /**
   * Writes `value` (null: deletes the key) only if the key is still at `version` (0: absent).
   * Returns the new version (0 after a delete), or undefined when the key had changed.
   */
  writeIf<T>(key: string, value: T | null, version: number, options?: CallOptions): Promise<number | undefined>;
  /** Where `key` is kept in Consul KV (a fence names it); undefined for process-local state. */
  kvKey(key: string): string | undefined;
}

/** Attempts of one update before giving up with CAS_CONFLICT. @default 25 */
export const MAX_CAS_ATTEMPTS = 25;

const backoff = (attempt: number) => new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));

function casConflict(key: string): MeshError {
  return new MeshError(
    "CAS_CONFLICT",
    `Could not update shared state "${key}": ${MAX_CAS_ATTEMPTS} concurrent writers won the check-and-set race in a row. Try again.`,
    { retryable: true },
  );
}

/** Process-local state, for stdio use and unit tests. */
export class MemoryState implements SharedState {
  private readonly values = new Map<string, { raw: string; version: number }>();
  private clock = 0;

  async get<T>(key: string): Promise<T | undefined> {
    return (await this.read<T>(key)).value;
  }

  async read<T>(key: string): Promise<Versioned<T>> {
    const v = this.values.get(key);
    return v ? { value: JSON.parse(v.raw) as T, version: v.version } : { value: undefined, version: 0 };
  }

  async update<T>(key: string, fn: (current: T | undefined) => T): Promise<T> {
    // One process: no other holder can act meanwhile, but a claim known lost still stops the write.
    currentFence()?.assertHeld();
    const next = fn(await this.get<T>(key));
    this.values.set(key, { raw: JSON.stringify(next), version: ++this.clock });
    return next;
  }

  async writeIf<T>(key: string, value: T | null, version: number): Promise<number | undefined> {
    if ((this.values.get(key)?.version ?? 0) !== version) return undefined;
    if (value === null) {
      this.values.delete(key);
      return 0;
    }
    this.values.set(key, { raw: JSON.stringify(value), version: ++this.clock });
    return this.clock;
  }

  kvKey(): undefined {
    return undefined;
  }

  /** Every key held now. */
  keys(): string[] {
    return [...this.values.keys()];
  }
}

/** State in Consul KV under a prefix, each update a check-and-set loop. */
export class ConsulKvState implements SharedState {
  private readonly consul: ConsulClient;
  private readonly prefix: string;

  constructor(consul: ConsulClient, prefix: string) {
    this.consul = consul;
    this.prefix = prefix.endsWith("/") ? prefix : `${prefix}/`;
  }

  async get<T>(key: string, options: CallOptions = {}): Promise<T | undefined> {
    return (await this.read<T>(key, options)).value;
  }

  async read<T>(key: string, options: CallOptions = {}): Promise<Versioned<T>> {
    const entry = await this.consul.kvGet(this.prefix + key, options);
    return entry ? { value: JSON.parse(entry.value) as T, version: entry.modifyIndex } : { value: undefined, version: 0 };
  }

  async writeIf<T>(key: string, value: T | null, version: number, options: CallOptions = {}): Promise<number | undefined> {
    const full = this.prefix + key;
    const r = await this.consul.kvTxn(
      value === null
        ? [{ verb: "delete-cas", key: full, index: version }]
        : [{ verb: "cas", key: full, value: JSON.stringify(value), index: version }],
      options,
    );
    if (!r.ok) return undefined;
    return value === null ? 0 : (r.results.find((x) => x.key === full)?.modifyIndex ?? 0);
  }

  kvKey(key: string): string {
    return this.prefix + key;
  }

  async update<T>(key: string, fn: (current: T | undefined) => T, options: CallOptions = {}): Promise<T> {
    const fence = currentFence();
    if (fence?.guard()) return fence.exclusive(() => this.fencedUpdate(fence, key, fn, options));
    fence?.assertHeld();
    const full = this.prefix + key;
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.consul.kvGet(full, options);
      const next = fn(entry ? (JSON.parse(entry.value) as T) : undefined);
      if (await this.consul.kvSet(full, JSON.stringify(next), { ...options, cas: entry?.modifyIndex ?? 0 })) return next;
      await backoff(attempt);
    }
    throw casConflict(key);
  }

  /**
   * The effect and the claim in one transaction: the claim is rewritten (marked applied) only
   * if it still has the version this holder last wrote, and the value only if unchanged since
   * read. A changed claim means another instance took the key over: nothing is written.
   */
  private async fencedUpdate<T>(fence: Fence, key: string, fn: (current: T | undefined) => T, options: CallOptions): Promise<T> {
    const full = this.prefix + key;
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      const guard = fence.guard();
      if (!guard) fence.lost("the claim closed before this write");
      const entry = await this.consul.kvGet(full, options);
      const next = fn(entry ? (JSON.parse(entry.value) as T) : undefined);
      const r = await this.consul
        .kvTxn(
          [
            { verb: "cas", key: guard.key, value: guard.value, index: guard.index },
            { verb: "cas", key: full, value: JSON.stringify(next), index: entry?.modifyIndex ?? 0 },
          ],
          options,
        )
        .catch((e: unknown) => {
          throw keyedRepeatIsSafe(e, fence);
        });
      if (r.ok) {
        fence.committed(r.results.find((x) => x.key === guard.key)?.modifyIndex ?? 0, guard.sentAt);
        return next;
      }
      // Consul reports the first operation that failed: the claim (0) or the value (1).
      if (r.failed.some((f) => f.op === 0)) {
        if (!(await fence.reconfirm?.())) fence.lost();
        continue;
      }
      await backoff(attempt);
    }
    throw casConflict(key);
  }
}

/**
 * Consul could not tell whether a fenced write applied. Unlike a plain write, repeating the call
 * with its idempotency key is safe: if the write applied, the claim says so and the call never
 * runs again; if not, the claim lapses and one repeat runs it. So the failure is retryable.
 */
function keyedRepeatIsSafe(e: unknown, fence: Fence): unknown {
  if (fence.kind !== "claim" || !isMeshError(e) || e.code !== "CONSUL_WRITE_UNKNOWN" || e.retryable) return e;
  return new MeshError(
    "CONSUL_WRITE_UNKNOWN",
    `${e.message} ${fence.label}: the idempotency key makes a repeat safe (it returns this call's result, or runs it once if it did not apply).`,
    { cause: e, retryable: true, details: e.details },
  );
}
