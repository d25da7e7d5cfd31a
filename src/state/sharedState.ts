import type { CallOptions, ConsulClient } from "../consul/client.ts";
import { MeshError } from "../protocol/errors.ts";

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
   */
  update<T>(key: string, fn: (current: T | undefined) => T, options?: CallOptions): Promise<T>;
}

/** Attempts of one update before giving up with CAS_CONFLICT. @default 25 */
export const MAX_CAS_ATTEMPTS = 25;

/** Process-local state, for stdio use and unit tests. */
export class MemoryState implements SharedState {
  private readonly values = new Map<string, string>();

  async get<T>(key: string): Promise<T | undefined> {
    const raw = this.values.get(key);
    return raw === undefined ? undefined : (JSON.parse(raw) as T);
  }

  async update<T>(key: string, fn: (current: T | undefined) => T): Promise<T> {
    const next = fn(await this.get<T>(key));
    this.values.set(key, JSON.stringify(next));
    return next;
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
    const entry = await this.consul.kvGet(this.prefix + key, options);
    return entry ? (JSON.parse(entry.value) as T) : undefined;
  }

  async update<T>(key: string, fn: (current: T | undefined) => T, options: CallOptions = {}): Promise<T> {
    const full = this.prefix + key;
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.consul.kvGet(full, options);
      const next = fn(entry ? (JSON.parse(entry.value) as T) : undefined);
      if (await this.consul.kvSet(full, JSON.stringify(next), { ...options, cas: entry?.modifyIndex ?? 0 })) return next;
      await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
    }
    throw new MeshError(
      "CAS_CONFLICT",
      `Could not update "${full}" in Consul KV: ${MAX_CAS_ATTEMPTS} concurrent writers won the check-and-set race in a row. Try again.`,
      { retryable: true },
    );
  }
}
