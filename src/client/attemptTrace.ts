import { ProtocolError } from "@modelcontextprotocol/client";
import type { CatalogInstance } from "../discovery/catalog.ts";
import { isMeshError } from "../protocol/errors.ts";
import { currentHopParent, hopId, hopsOf, recordHops, type Hop } from "../telemetry/hops.ts";
import { inSpan, SpanKind, traceparentOf, tracingEnabled } from "../telemetry/tracing.ts";
import type { Attempt, Call } from "./call.ts";

/** Sends the attempt, with the traceparent that makes the agent's span (and hop) its child, when there is one. */
export type SendTraced = (traceparent?: string) => Promise<Attempt>;

/**
 * One attempt as tracing and hop reports see it: untouched when neither is on; else its span
 * id travels as the traceparent's parent id, with tracing as one CLIENT span per attempt (a
 * failover shows as two, each the parent of the agent's SERVER span), and for a call that
 * reports its hops as a hop of its own beside the agent's.
 */
export function tracedAttempt(call: Call, instance: CatalogInstance, n: number, callerName: string, send: SendTraced): Promise<Attempt> {
  const reportHops = call.ctx.reportHops === true;
  if (!tracingEnabled() && !reportHops) return send();
  const run = (traceparent: string) =>
    reportHops ? reportedAttempt(call, instance, n, callerName, traceparent, () => send(traceparent)) : send(traceparent);
  if (!tracingEnabled()) return run(`00-${call.ctx.traceId}-${hopId()}-${call.ctx.traceFlags}`);
  return inSpan(
    {
      name: `tools/call ${call.tool}`,
      kind: SpanKind.CLIENT,
      traceId: call.ctx.traceId,
      parentSpanId: call.ctx.spanId,
      attributes: {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.tool,
        "server.address": instance.address,
        "server.port": instance.port,
        "toolmesh.agent": call.agent,
        "toolmesh.instance": instance.id,
        "toolmesh.attempt": n,
        "toolmesh.hop": call.ctx.hop,
        "toolmesh.caller_chain": [...call.ctx.callerChain],
        ...(call.ctx.sessionId ? { "toolmesh.session": call.ctx.sessionId } : {}),
      },
    },
    (span) => run(traceparentOf(span)),
    (a) => ("result" in a ? (a.result.isError ? "tool_error" : undefined) : "kind" in a && a.kind === "skip" ? "circuit_open" : a.reason),
  );
}

/** An attempt of a call that reports its hops: its own, and those the agent's result brings back. */
async function reportedAttempt(
  call: Call,
  instance: CatalogInstance,
  n: number,
  callerName: string,
  traceparent: string,
  send: () => Promise<Attempt>,
): Promise<Attempt> {
  const started = performance.now();
  const parent = currentHopParent();
  const own = (error?: string): Hop => ({
    id: traceparent.split("-")[2]!, // the attempt's span id: the agent's hop names it as its parent
    ...(parent ? { parent } : {}),
    kind: "client",
    service: callerName,
    name: `${call.agent}.${call.tool}`,
    instance: instance.id,
    start: performance.timeOrigin + started,
    ms: performance.now() - started,
    attempt: n,
    ...(error ? { error } : {}),
  });
  let a: Attempt;
  try {
    a = await send();
  } catch (e) {
    recordHops(own(isMeshError(e) ? e.code : e instanceof ProtocolError ? String(e.code) : "failed"));
    throw e;
  }
  if ("result" in a) recordHops(own(a.result.isError ? "tool_error" : undefined), ...hopsOf(a.result._meta));
  else recordHops(own("kind" in a && a.kind === "skip" ? "circuit_open" : a.reason));
  return a;
}
