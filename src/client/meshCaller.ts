import type { CallToolResult } from "@modelcontextprotocol/client";
import type { MeshContext } from "../context/meshContext.ts";
import type { CallerIdentity } from "../http/identity.ts";
import type { ClientPool } from "./pool.ts";

export interface CallToolOptions {
  signal?: AbortSignal;
  /** Per-call timeout; becomes (or shortens) the context's absolute deadline. @default DEFAULT_CALL_TIMEOUT_MS */
  timeoutMs?: number;
  /**
   * The context to send. Default: inside a tool handler, a child of the call being served
   * (same trace, hop + 1, this agent appended to the caller chain, deadline inherited);
   * elsewhere, a new root context.
   */
  context?: MeshContext;
  /**
   * Makes a side-effecting call safe to repeat: agents built with the kit run the first call
   * with a given key and return its result to every repeat (on any replica, within a
   * window), so the caller may fail it over like an idempotent one. Use one key per
   * intended effect (e.g. a UUID per request).
   */
  idempotencyKey?: string;
  /** Told which instance the call was sent to (for logs and demos). */
  onInstance?: (instanceId: string) => void;
  /**
   * Longest silence allowed from the agent; progress notifications reset it. The deadline
   * (timeoutMs) still bounds the whole call. Default: the whole remaining budget.
   */
  idleTimeoutMs?: number;
  /**
   * Connections to use instead of the shared pool: a gateway session that relays
   * server→client requests (sampling, elicitation, roots) needs connections of its own.
   */
  pool?: ClientPool;
  /**
   * Return a 2026-07-28 `input_required` result to the caller instead of failing the call
   * (the gateway relays it to its own client). Needs a pool made with relayInputRequests.
   */
  relayInputRequests?: boolean;
  /**
   * The client's answers to an earlier `input_required` result of this same call (2026-07-28
   * multi-round-trip): sent on, byte for byte, to the agent that asked.
   */
  continuation?: { inputResponses?: Record<string, unknown>; requestState?: string };
  /**
   * Reserved `_meta` keys sent as they are (the gateway passes on its client's capabilities
   * and log level); the mesh context is added beside them.
   */
  envelope?: Record<string, unknown>;
  /**
   * The arguments exactly as a client sent them (JSON text equal to `args`): forwarded byte
   * for byte on a direct call (the gateway's hot path), so key order, number formatting and
   * escapes arrive as written.
   */
  rawArguments?: string;
  /** Who the call is for, signed to the agent. @default the identity of the request being served (principal.ts) */
  identity?: CallerIdentity;
  /** Progress notifications from the agent; each one also resets the idle timeout. */
  onProgress?: (progress: { progress: number; total?: number; message?: string }) => void;
}

/** Default per-call timeout. @default 30000 */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/** Calls a tool of another agent, wherever its healthy instances are. */
export interface MeshCaller {
  callTool(agent: string, tool: string, args: Record<string, unknown>, options?: CallToolOptions): Promise<CallToolResult>;
  close(): Promise<void>;
}
