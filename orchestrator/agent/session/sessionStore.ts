import { randomUUID } from "node:crypto";
import type { ConsulClient } from "../../../src/consul/client.ts";
import { MAX_HISTORY_TURNS, type Turn } from "../../../src/context/meshContext.ts";
import { BusinessError } from "../../../src/protocol/results.ts";
import { ConsulKvState } from "../../../src/state/sharedState.ts";

/** KV prefix of orchestrator sessions. @default "toolmesh/sessions/" */
export const SESSION_PREFIX = "toolmesh/sessions/";
/** A session nobody used for this long starts afresh. @default 1800000 (30 min) */
export const SESSION_IDLE_TTL_MS = 30 * 60_000;
/** Largest stored session; older turns go first. @default 65536 */
export const SESSION_MAX_BYTES = 64 * 1024;

export interface Session {
  id: string;
  /**
   * Who started it (principal.ts `ownerOf`): the only caller that may read, continue or
   * confirm in it. Absent only in sessions recorded before sessions had owners.
   */
  owner?: string;
  history: Turn[];
  facts: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** Session ids are chosen by users: keep them to a safe alphabet (they become KV keys). */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * A caller asked for a session that is not theirs: another principal's, or one recorded
 * before sessions had owners (nobody can show it is theirs, so nobody continues it). A
 * business error: the message says what to do and tells nothing of the session's content.
 */
export class SessionRefused extends BusinessError {}

/**
 * Multi-turn sessions in Consul KV, written with check-and-set, so any orchestrator process
 * can continue any session. Each belongs to the principal that started it: load and record
 * refuse every other (SessionRefused). Bounded (last turns only, capped size) and expiring
 * when idle (an expired session reads as new, for whoever asks; sweep() deletes expired ones).
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

  /** The session as `owner` may see it: new (theirs) when absent or expired; SessionRefused when another's. */
  async load(id: string, owner: string): Promise<Session> {
    const s = await this.state.get<Session>(id);
    if (!s || this.expired(s)) return fresh(id, owner);
    return ownedBy(s, owner);
  }

  /** Appends turns and merges facts atomically, as `owner` (who starts it if it is new); returns the stored session. */
  async record(id: string, owner: string, turns: readonly Turn[], facts: Record<string, unknown> = {}): Promise<Session> {
    return this.state.update<Session>(id, (cur) => {
      const base = cur && !this.expired(cur) ? ownedBy(cur, owner) : fresh(id, owner);
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

function fresh(id: string, owner: string): Session {
  const now = new Date().toISOString();
  return { id, owner, history: [], facts: {}, createdAt: now, updatedAt: now };
}

function ownedBy(s: Session, owner: string): Session {
  if (s.owner === owner) return s;
  throw new SessionRefused(
    s.owner === undefined
      ? `Session "${s.id}" cannot be continued: it was started before sessions recorded who started them, so it is nobody's to continue; start a new one (omit session_id).`
      : `Session "${s.id}" is not yours: this session belongs to another caller; start a new one (omit session_id).`,
  );
}
