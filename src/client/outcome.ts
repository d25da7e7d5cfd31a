import { ProtocolError, SdkError, SdkErrorCode, SdkHttpError } from "@modelcontextprotocol/client";
import type { MeshContext } from "../context/meshContext.ts";
import {
  DEADLINE_ERROR_CODE,
  HOP_LIMIT_ERROR_CODE,
  IDEMPOTENCY_CONFLICT_ERROR_CODE,
  MESH_FAILURE_ERROR_CODE,
  RATE_LIMITED_ERROR_CODE,
} from "../protocol/codes.ts";
import { MeshError, describeError, type MeshErrorCode } from "../protocol/errors.ts";
import { notDelivered, type NotDeliveredReason } from "./delivery.ts";
import { ConnectError } from "./pool.ts";

/** What to do after an attempt failed. */
export type Outcome =
  /** Give the caller this error. */
  | { kind: "fail"; error: Error }
  /** The call's deadline passed at this instance. */
  | { kind: "deadline" }
  /**
   * The instance sent no answer and no progress for the longest silence the caller allows
   * (its idle timeout), well before the deadline: it may be hung; the call was abandoned there.
   */
  | { kind: "silent" }
  /** Try again: on the same instance (a fresh session), or on the next one. */
  | { kind: "retry"; same: boolean; reason: NotDeliveredReason | "repeatable"; dropConnection: boolean };

export interface AttemptFacts {
  agent: string;
  tool: string;
  instance: string;
  ctx: MeshContext;
  /** The tool is safe to run again (read-only/idempotent, or a key every replica deduplicates). */
  repeatable: boolean;
  /** The request left this caller (it was handed to the instance's connection). */
  sent: boolean;
  /** The caller cancelled. */
  cancelled: boolean;
  /** The call's deadline passed. */
  deadlinePassed: boolean;
  /** The attempt was abandoned for lack of an answer or progress (a hung instance). */
  abandoned: boolean;
  /** The attempt's timeout was its idle limit (silence), not the call's deadline, which is still ahead. */
  silenceLimited?: boolean;
}

/**
 * Classifies a failed attempt. An answer from the agent (a JSON-RPC error) goes to the
 * caller; a failure that proves nothing ran (refused, not connected, unknown session,
 * draining, overloaded) is tried again; anything else is tried again only when repeating
 * the tool is harmless, else it is DELIVERY_UNKNOWN, naming the instance: never a silent
 * second execution.
 */
export function classify(e: unknown, f: AttemptFacts): Outcome {
  if (f.cancelled) return { kind: "fail", error: asError(e) };
  if (f.deadlinePassed) return { kind: "deadline" };
  if (f.abandoned) return { kind: "retry", same: false, reason: "repeatable", dropConnection: false };
  if (e instanceof ProtocolError) {
    if (e.code === DEADLINE_ERROR_CODE) return { kind: "deadline" };
    return { kind: "fail", error: answered(e, f) };
  }
  // A timeout before the deadline is the idle limit: the instance fell silent, the call's time is not up.
  if (isTimeout(e)) return f.silenceLimited ? { kind: "silent" } : { kind: "deadline" };
  const reason = notDelivered(e);
  if (reason) return { kind: "retry", same: reason === "session-unknown", reason, dropConnection: reason !== "overloaded" };
  if (f.repeatable) return { kind: "retry", same: false, reason: "repeatable", dropConnection: true };
  return {
    kind: "fail",
    error: new MeshError(
      "DELIVERY_UNKNOWN",
      `Delivery unknown: ${f.agent}.${f.tool} on ${f.instance} may or may not have run (${describeError(e)}). It is not marked idempotent and the call had no idempotency key, so it was not retried; check its effect before calling again (or call with an idempotency key).`,
      { retryable: false, cause: e, details: { agent: f.agent, tool: f.tool, instance: f.instance, traceId: f.ctx.traceId } },
    ),
  };
}

/**
 * Whether a failure counts against the instance (passive health): no answer (connection
 * errors, timeouts, a 5xx), not the agent's own answers, a refusal for load, an HTTP answer
 * below 500 (401, 404 for an expired session: the instance is up), or the caller's cancellation.
 */
export function isFault(e: unknown, sent: boolean, cancelled: boolean): boolean {
  if (e instanceof ConnectError) return true;
  if (!sent || cancelled) return false; // a call that waited in this caller's queue says nothing about the instance
  if (e instanceof SdkHttpError) return e.status >= 500 && notDelivered(e) !== "overloaded";
  if (e instanceof ProtocolError) return false;
  if (e instanceof SdkError) return e.code === SdkErrorCode.ConnectionClosed || e.code === SdkErrorCode.RequestTimeout;
  return notDelivered(e) !== "overloaded";
}

function isTimeout(e: unknown): boolean {
  return e instanceof SdkError && e.code === SdkErrorCode.RequestTimeout;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * An agent's JSON-RPC error as the caller should see it: a mesh failure under the agent
 * (Consul unreachable, another agent down), a hop limit and a reused idempotency key become
 * MeshErrors with their own codes; any other error is the agent's answer as it came.
 */
function answered(e: ProtocolError, f: AttemptFacts): Error {
  const where = { agent: f.agent, tool: f.tool, instance: f.instance, traceId: f.ctx.traceId };
  const message = protocolMessage(e);
  if (e.code === HOP_LIMIT_ERROR_CODE) return new MeshError("HOP_LIMIT", message, { cause: e, details: where });
  if (e.code === IDEMPOTENCY_CONFLICT_ERROR_CODE) return new MeshError("IDEMPOTENCY_CONFLICT", message, { cause: e, details: where });
  if (e.code === RATE_LIMITED_ERROR_CODE) {
    // Refused before it ran: safe to send again once the server's retry-after has passed.
    const after = (e.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    const retryAfterMs = typeof after === "number" && after > 0 ? after : 1_000;
    return new MeshError("RATE_LIMITED", message, { retryable: true, cause: e, details: { ...where, retryAfterMs } });
  }
  if (e.code !== MESH_FAILURE_ERROR_CODE) return e;
  const data = (e.data ?? {}) as { code?: unknown; retryable?: unknown };
  const code = typeof data.code === "string" ? (data.code as MeshErrorCode) : "AGENT_UNREACHABLE";
  return new MeshError(code, `${f.agent}.${f.tool} on ${f.instance} could not do its work: ${message}`, {
    retryable: data.retryable === true,
    cause: e,
    details: where,
  });
}

/** A ProtocolError's own message, without the "MCP error <code>: " the SDK puts in front. */
export function protocolMessage(e: ProtocolError): string {
  return e.message.replace(/^MCP error -?\d+: /, "");
}
