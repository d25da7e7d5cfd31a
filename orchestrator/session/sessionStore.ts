import { randomUUID } from "node:crypto";
import type { ConsulClient } from "../../src/consul/client.ts";
import { MAX_HISTORY_TURNS, type Turn } from "../../src/context/meshContext.ts";
import { ConsulKvState } from "../../src/state/sharedState.ts";

/** KV prefix of orchestrator sessions. @default "toolmesh/sessions/" */
export const SESSION_PREFIX = "toolmesh/sessions/";
/** A session nobody used for this long starts afresh. @default 1800000 (30 min) */
export const SESSION_IDLE_TTL_MS = 30 * 60_000;
/** Largest stored session; older turns go first. @default 65536 */
export const SESSION_MAX_BYTES = 64 * 1024;

export interface Session {
  id: string;
  history: Turn[];
  facts: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** Session ids are chosen by users: keep them to a safe alphabet (they become KV keys). */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Multi-turn sessions in Consul KV, written with check-and-set, so any orchestrator process
 * can continue any session. Bounded (last turns only, capped size) and expiring when idle
 * (an expired session reads as new; sweep() deletes expired ones).
 */
export class SessionStore {
  private readonly state: ConsulKvState;
  private readonly consul: ConsulClient;
  private readonly idleTtlMs: number;

  constructor(consul: ConsulClient, options: { idleTtlMs?: number } = {}) {
    this.consul = consul;
    this.state = new ConsulKvState(consul, SESSION_PREFIX);
    this.idleTtlMs = options.idleTtlMs ?? SESSION_IDLE_TTL_MS;
  }

  newId(): string {
    return randomUUID();
  }

  async load(id: string): Promise<Session> {
    const s = await this.state.get<Session>(id);
    return s && !this.expired(s) ? s : fresh(id);
  }

  /** Appends turns and merges facts atomically; returns the stored session. */
  async record(id: string, turns: readonly Turn[], facts: Record<string, unknown> = {}): Promise<Session> {
    return this.state.update<Session>(id, (cur) => {
      const base = cur && !this.expired(cur) ? cur : fresh(id);
      const next: Session = {
        ...base,
        history: [...base.history, ...turns].slice(-MAX_HISTORY_TURNS),
        facts: { ...base.facts, ...facts },
        updatedAt: new Date().toISOString(),
      };
      while (JSON.stringify(next).length > SESSION_MAX_BYTES && next.history.length > 1) next.history.shift();
      return next;
    });
  }

  /** Deletes sessions idle for longer than the TTL; returns how many. */
  async sweep(): Promise<number> {
    let removed = 0;
    for (const key of await this.consul.kvKeys(SESSION_PREFIX)) {
      const s = await this.state.get<Session>(key.slice(SESSION_PREFIX.length));
      if (s && this.expired(s)) {
        await this.consul.kvDelete(key);
        removed++;
      }
    }
    return removed;
  }

  private expired(s: Session): boolean {
    return Date.now() - Date.parse(s.updatedAt) > this.idleTtlMs;
  }
}

function fresh(id: string): Session {
  const now = new Date().toISOString();
  return { id, history: [], facts: {}, createdAt: now, updatedAt: now };
}
