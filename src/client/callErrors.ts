import { agentTokenVariable } from "../protocol/credentials.ts";
import { MeshError, describeError } from "../protocol/errors.ts";
import { isToolmesh, type CatalogInstance } from "../discovery/catalog.ts";
import type { Call } from "./call.ts";
import type { TokenFor } from "./tokens.ts";

/** The instance answered 401: which token this caller sent (or that it sent none), and which variable to set. */
export function unauthorized(tokenFor: TokenFor, agent: string, instance: CatalogInstance, cause: unknown): MeshError {
  const toolmesh = isToolmesh(instance.meta);
  const sent = tokenFor(agent, toolmesh) !== undefined;
  const remedy = toolmesh
    ? `Set ${agentTokenVariable(agent)} (for ${agent} only) to a token it accepts, or MESH_TOKEN to one of the mesh tokens it accepts (callers send ${agent} a credential derived from it, never the token itself).`
    : `It is not a toolmesh agent, so nothing derived from MESH_TOKEN is sent to it; set ${agentTokenVariable(agent)} to the token it expects.`;
  return new MeshError(
    "UNAUTHORIZED",
    `${instance.id} refused the call: ${sent ? "it does not accept this caller's bearer token" : "it requires a bearer token and this caller sent none"}. ${remedy}`,
    { retryable: false, cause, details: { agent, instance: instance.id } },
  );
}

/**
 * The call's deadline passed. If the request never left this caller, nothing ran. If it
 * was sent, the agent was asked to cancel it, but a cancellation cannot undo an effect
 * that already happened: a tool that is not safe to repeat is reported as delivery
 * unknown (so nobody pays twice by running the command again), a repeatable one as a
 * plain timeout.
 */
export function deadlineError(call: Call, instance: CatalogInstance, sent: boolean, cause: unknown): MeshError {
  const { agent, tool, ctx, timeoutMs } = call;
  const details = { agent, tool, instance: instance.id, traceId: ctx.traceId };
  const what = `${agent}.${tool} on ${instance.id} did not answer within its deadline (${timeoutMs} ms)`;
  if (!sent) {
    return new MeshError("TIMEOUT", `${what}; it was still waiting to be sent, so it did not run. Trace ${ctx.traceId}.`, {
      retryable: true,
      cause,
      details,
    });
  }
  if (!call.repeatable) {
    return new MeshError(
      "DELIVERY_UNKNOWN",
      `Delivery unknown: ${what}. It may or may not have run: ${instance.id} was asked to cancel it, but a cancellation cannot undo an effect that already happened, and ${tool} is not safe to repeat. Check its effect before calling again, or repeat it with the same idempotency key. Trace ${ctx.traceId}.`,
      { retryable: false, cause, details },
    );
  }
  return new MeshError("TIMEOUT", `${what}; ${instance.id} was asked to cancel it. It is safe to call again. Trace ${ctx.traceId}.`, {
    retryable: true,
    cause,
    details,
  });
}

/**
 * The instance sent no answer and no progress for the longest silence this caller allows
 * (`idleTimeoutMs`, the gateway's 60 s), long before the deadline: the limit that ended
 * the call is that one, and the message names it. The request was sent (a call still
 * waiting to be sent is bounded by the deadline only), so what may have run is as for a
 * deadline.
 */
export function silenceError(call: Call, instance: CatalogInstance, cause: unknown): MeshError {
  const { agent, tool, ctx, options } = call;
  const details = { agent, tool, instance: instance.id, traceId: ctx.traceId, idleTimeoutMs: options.idleTimeoutMs };
  const what = `${agent}.${tool} on ${instance.id} sent no answer and no progress within ${options.idleTimeoutMs} ms, the longest one attempt may stay silent (this caller's idle timeout)`;
  if (!call.repeatable) {
    return new MeshError(
      "DELIVERY_UNKNOWN",
      `Delivery unknown: ${what}. It may or may not have run: ${instance.id} was asked to cancel it, but ${tool} is not safe to repeat. Check its effect before calling again, or repeat it with the same idempotency key. Trace ${ctx.traceId}.`,
      { retryable: false, cause, details },
    );
  }
  return new MeshError(
    "TIMEOUT",
    `${what}; it may be hung, and no other instance was left to try. It is safe to call again. Trace ${ctx.traceId}.`,
    { retryable: true, cause, details },
  );
}

/** What the attempts of a call that none answered ran into, for the error that says so. */
export interface Unanswered {
  lastError: unknown;
  /** Instances at their concurrency limit. */
  overloaded: number;
  /** Instances left for their silence, in words. */
  silences: string[];
  /** Instances skipped: out of rotation meanwhile. */
  skipped: string[];
  /** Some attempt failed otherwise than by silence. */
  otherFailures: boolean;
}

/**
 * No instance answered: every one at its concurrency limit (OVERLOADED, nothing started),
 * every one tried silent (TIMEOUT, they may be hung), or else unreachable.
 */
export function noAnswer(call: Call, order: readonly CatalogInstance[], u: Unanswered): MeshError {
  const { agent, tool, ctx } = call;
  if (u.overloaded === order.length) {
    return new MeshError(
      "OVERLOADED",
      `Every instance of agent "${agent}" is at its concurrency limit (${order.map((i) => i.id).join(", ")}); ${agent}.${tool} was not started anywhere. Retry shortly, or add replicas.`,
      { retryable: true, cause: u.lastError, details: { agent, tool, traceId: ctx.traceId } },
    );
  }
  if (u.silences.length > 0 && !u.otherFailures) {
    // Every instance tried stayed silent (the others were out of rotation for the same reason, for other calls).
    const out = u.skipped.length ? `; ${u.skipped.join(", ")} out of rotation after failing other calls` : "";
    return new MeshError(
      "TIMEOUT",
      `No instance of agent "${agent}" answered ${agent}.${tool}: ${u.silences.join("; ")}${out}. They may be hung; it is safe to call again. Trace ${ctx.traceId}.`,
      { retryable: true, cause: u.lastError, details: { agent, tool, traceId: ctx.traceId } },
    );
  }
  return new MeshError(
    "AGENT_UNREACHABLE",
    `No healthy instance of agent "${agent}" took the call (${order.map((i) => i.id).join(", ")}): ${describeError(u.lastError)}`,
    { retryable: true, cause: u.lastError, details: { agent, traceId: ctx.traceId } },
  );
}
