import type { CallToolResult } from "@modelcontextprotocol/client";
import { childContext, currentMeshContext, rootContext, type MeshContext } from "../context/meshContext.ts";
import type { CallerIdentity } from "../http/identity.ts";
import type { CallToolOptions } from "./meshCaller.ts";
import type { ClientPool } from "./pool.ts";

/** One call on its way: what every attempt needs. */
export interface Call {
  agent: string;
  tool: string;
  args: Record<string, unknown>;
  ctx: MeshContext;
  deadline: number;
  timeoutMs: number;
  /** When the call started (Date.now()). */
  started: number;
  /** Ends with the caller's signal or the deadline. */
  signal: AbortSignal;
  deadlineSignal: AbortSignal;
  repeatable: boolean;
  options: CallToolOptions;
  pool: ClientPool;
  /** Who the call is for (the request being served when it was made). */
  identity: CallerIdentity | undefined;
}

/** How one attempt ended: an answer, an instance skipped (its breaker is open), or a failure to try again after. */
export type Attempt =
  | { result: CallToolResult }
  | { kind: "skip" }
  /** `silence`: the instance was left for staying silent, in words (which limit, how long). */
  | { kind: "retry"; same: boolean; reason: string; error: unknown; silence?: string };

/**
 * The context a call carries and its absolute deadline: the caller's own context, else a
 * child of the call being served, else a new root; the deadline the earlier of the
 * context's and `timeoutAt`; the idempotency key, if the call has one.
 */
export function callContext(
  callerName: string,
  agent: string,
  options: CallToolOptions,
  timeoutAt: number,
): { ctx: MeshContext; deadline: number } {
  const current = currentMeshContext();
  const ctx = options.context ?? (current ? childContext(current, callerName, agent) : rootContext({ caller: callerName }));
  const deadline = Math.min(ctx.deadline ?? Number.POSITIVE_INFINITY, timeoutAt);
  return { ctx: { ...ctx, deadline, ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}) }, deadline };
}

/** A call's deadline as a signal (`deadlineSignal`), and the signal that also ends with the caller's. */
export interface DeadlineSignals {
  deadlineSignal: AbortSignal;
  signal: AbortSignal;
  /** Clears the timer: the call ended. */
  clear(): void;
}

/**
 * The deadline as one timer, cleared when the call ends (AbortSignal.timeout would hold its
 * timer, and everything the signal reaches, for the whole budget: an hour at the gateway).
 */
export function deadlineSignals(deadline: number, callerSignal: AbortSignal | undefined): DeadlineSignals {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DOMException("deadline reached", "TimeoutError")), Math.max(0, deadline - Date.now()));
  return {
    deadlineSignal: ctl.signal,
    signal: callerSignal ? AbortSignal.any([callerSignal, ctl.signal]) : ctl.signal,
    clear: () => clearTimeout(timer),
  };
}
