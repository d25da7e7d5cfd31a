import {
  isInputRequiredResult,
  type CallToolResult,
  type ClientCapabilities,
  type McpServer,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { runWithMeshContext, type MeshContext } from "../context/meshContext.ts";
import { ownerOf, withIdentity } from "../http/principal.ts";
import type { Logger } from "../logger.ts";
import { META_PREFIX } from "../protocol/keys.ts";
import { collectHops, HOPS_META, hopId, type Hop } from "../telemetry/hops.ts";
import { callsInFlight, toolCalls, toolCallSeconds } from "../telemetry/metrics.ts";
import { inSpan, SpanKind, tracingEnabled } from "../telemetry/tracing.ts";
import { clientCapabilitiesOf, detachedContext, progressOf } from "./callContext.ts";
import { admit, checkDeadline, checkHop, checkIdempotencyKey, checkIdentity, decode, type CallParams } from "./callChecks.ts";
import type { IdempotencyLedger } from "./idempotency.ts";
import { claimAndRun, invoke, withDeadline } from "./runHandler.ts";
import type { TaskEngine } from "./taskEngine.ts";
import { declaresTasks, tasksCapabilityMissing } from "./tasks.ts";
import type { ToolCall, ToolOutcome, ToolRegistry, ToolSpec } from "./tools.ts";

export interface CallPipelineOptions {
  agent: string;
  registry: ToolRegistry;
  /** Runs calls that carry an idempotency key at most once per key. */
  ledger?: IdempotencyLedger;
  /** Runs the calls of task-supporting tools as tasks, for clients that declare the extension. */
  tasks?: TaskEngine;
  /** This instance's id (named in hop reports). */
  instance?: () => string;
  logger: Logger;
}

/**
 * Answers tools/list and tools/call on a server instance from the agent's one registry.
 * Must run before the server connects (capabilities are fixed then).
 */
export function installTools(server: McpServer, o: CallPipelineOptions): void {
  server.server.registerCapabilities({ tools: { listChanged: true } });
  server.server.setRequestHandler("tools/list", () => ({ tools: [...o.registry.listing] }));
  server.server.setRequestHandler("tools/call", (request, ctx) =>
    callTool(o, request.params as CallParams, ctx, () => server.server.getClientCapabilities() ?? {}),
  );
}

/**
 * One tools/call, in one explicit order (DESIGN.md): decode the MeshContext once → limits
 * (size, depth, the tool exists, arguments valid) → hop limit → deadline → idempotency
 * claim → handler → record. Nothing is claimed before it is validated, and nothing is
 * released while the handler still runs. Refusals and mesh failures are JSON-RPC errors;
 * business failures are isError results.
 */
export function callTool(
  o: CallPipelineOptions,
  params: CallParams,
  sdk: ServerContext,
  /** The session's client capabilities (2025-11-25), when the request's envelope declares none. */
  sessionCapabilities: () => ClientCapabilities = () => ({}),
): Promise<ToolOutcome> {
  if (!tracingEnabled()) return serveCall(o, params, sdk, sessionCapabilities);
  // The SERVER span: the child of the caller's attempt (its traceparent in _meta); the handler,
  // its onward calls and its Consul KV work run inside it.
  const meta = params._meta ?? {};
  const chain = meta[`${META_PREFIX}caller`];
  return inSpan(
    {
      name: `tools/call ${params.name}`,
      kind: SpanKind.SERVER,
      ...(typeof meta["traceparent"] === "string" ? { traceparent: meta["traceparent"] } : {}),
      attributes: {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": params.name,
        ...(sdk.sessionId ? { "mcp.session.id": sdk.sessionId } : {}),
        "toolmesh.agent": o.agent,
        ...(Array.isArray(chain) ? { "toolmesh.caller_chain": chain.filter((c): c is string => typeof c === "string").slice(0, 64) } : {}),
        ...(typeof meta[`${META_PREFIX}hop`] === "number" ? { "toolmesh.hop": meta[`${META_PREFIX}hop`] as number } : {}),
      },
    },
    () => serveCall(o, params, sdk, sessionCapabilities),
    (r) => ((r as CallToolResult).isError ? "tool_error" : undefined),
  );
}

async function serveCall(
  o: CallPipelineOptions,
  params: CallParams,
  sdk: ServerContext,
  sessionCapabilities: () => ClientCapabilities,
): Promise<ToolOutcome> {
  const started = performance.now();
  const ctx = decode(params);
  const identity = checkIdentity(o, ctx, params);
  if (identity) return withIdentity(identity, () => serveChecked(o, params, sdk, sessionCapabilities, ctx, started));
  return serveChecked(o, params, sdk, sessionCapabilities, ctx, started);
}

/** A call past its checks: what the steps after them (claim, handler, record) work on. */
interface AdmittedCall {
  readonly o: CallPipelineOptions;
  readonly params: CallParams;
  readonly ctx: MeshContext;
  readonly spec: ToolSpec;
  readonly args: Record<string, unknown>;
  /** What the handler gets; its signal fires when the caller cancels or the deadline passes. */
  readonly call: ToolCall;
}

/** The steps after the identity check, in order (callChecks.ts, then runHandler.ts); a call becomes a task here. */
async function serveChecked(
  o: CallPipelineOptions,
  params: CallParams,
  sdk: ServerContext,
  sessionCapabilities: () => ClientCapabilities,
  ctx: MeshContext,
  started: number,
): Promise<ToolOutcome> {
  checkIdempotencyKey(o, ctx, params);
  const admitted = await admit(o, params, ctx);
  if (!admitted.ok) {
    // Only a known tool gets here (an unknown one is refused above): its name is a safe label.
    toolCalls.inc({ agent: o.agent, tool: params.name, outcome: "refused" });
    return admitted.result;
  }
  const { spec, args } = admitted;
  checkHop(o, ctx, spec);
  const deadline = checkDeadline(o, ctx, spec);
  const abort = new AbortController();
  const call: ToolCall = {
    signal: AbortSignal.any([sdk.mcpReq.signal, abort.signal]),
    context: ctx,
    sdk,
    progress: progressOf(sdk),
    clientCapabilities: clientCapabilitiesOf(sdk, sessionCapabilities),
  };
  const admittedCall: AdmittedCall = { o, params, ctx, spec, args, call };
  if (spec.task && o.tasks) {
    if (declaresTasks(call.clientCapabilities)) return runAsTask(admittedCall, o.tasks);
    if (spec.task === "required") throw tasksCapabilityMissing(`${o.agent}.${spec.name} runs only as a task;`);
  }
  return runNow(admittedCall, deadline, abort, started);
}

/**
 * A task: answered now with its handle; the handler runs detached from this request (its
 * deadline and cancellation), with the input responses tasks/update delivers. A repeat is
 * answered with the first call's handle (the ledger's record): as the task is now.
 */
async function runAsTask(c: AdmittedCall, tasks: TaskEngine): Promise<ToolOutcome> {
  const { o, ctx, spec, args, call } = c;
  if (spec.prepare) {
    const asked = await runWithMeshContext(ctx, () => spec.prepare!(args, call));
    if (asked) return asked;
  }
  const gathered = call.sdk.mcpReq.inputResponses as Record<string, unknown> | undefined;
  const start = () =>
    tasks.create(spec.name, ownerOf(c.params._meta), gathered, (inputResponses, taskSignal, report) =>
      runWithMeshContext({ ...ctx, deadline: undefined }, () =>
        invoke(o, spec, args, {
          signal: taskSignal,
          context: { ...ctx, deadline: undefined },
          sdk: detachedContext(call.sdk, inputResponses, taskSignal),
          // A task's progress is its status message (SEP-2663 sends no progress notifications for tasks).
          progress: async (done, total, message) => report(message ?? (total ? `${done} of ${total}` : `${done}`)),
          clientCapabilities: call.clientCapabilities,
        }),
      ),
    ) as Promise<ToolOutcome>;
  return ctx.idempotencyKey && o.ledger
    ? claimAndRun(o.ledger, ctx, c.params._meta, spec, args, start).then((handle) => tasks.current(handle, ownerOf(c.params._meta)))
    : start();
}

/**
 * Steps 5-7 while the caller waits, within the deadline (at it, the handler's signal fires):
 * the claim (a call with an idempotency key), the handler, the record; hop reports for a
 * caller that asked; the call counted and logged whatever its end.
 */
async function runNow(c: AdmittedCall, deadline: number | undefined, abort: AbortController, started: number): Promise<ToolOutcome> {
  const { o, ctx, spec, args, call } = c;
  const run = () => runWithMeshContext(ctx, () => invoke(o, spec, args, call));
  const once = () => (ctx.idempotencyKey && o.ledger ? claimAndRun(o.ledger, ctx, c.params._meta, spec, args, run) : run());
  // A caller that asked for hop reports gets this call's (and its onward calls') with the result.
  const serverHop = ctx.reportHops ? hopId() : undefined;
  let hops: Hop[] = [];
  const work = serverHop ? collectHops(serverHop, once).then((r) => ((hops = r.hops), r.value)) : once();
  let outcome: ToolOutcome | undefined;
  callsInFlight.inc();
  try {
    outcome = await withDeadline(work, deadline, () => {
      abort.abort(new Error("deadline reached"));
      o.logger.warn({ traceId: ctx.traceId, tool: spec.name }, "deadline reached: cancelling the call");
      return `Deadline passed while ${o.agent}.${spec.name} was running; cancelled.`;
    });
    if (serverHop && !isInputRequiredResult(outcome)) outcome = withOwnHop(c, outcome as CallToolResult, serverHop, hops, started);
    return outcome;
  } finally {
    callsInFlight.dec();
    recordCall(c, outcome, started);
  }
}

/** The result with the hop reports in its _meta: its onward calls' and this call's own (server) hop. */
function withOwnHop(c: AdmittedCall, result: CallToolResult, id: string, hops: Hop[], started: number): ToolOutcome {
  const { o, ctx, spec } = c;
  const own: Hop = {
    id,
    ...(ctx.spanId ? { parent: ctx.spanId } : {}),
    kind: "server",
    service: o.agent,
    name: `${o.agent}.${spec.name}`,
    ...(o.instance ? { instance: o.instance() } : {}),
    start: performance.timeOrigin + started,
    ms: performance.now() - started,
    ...(result.isError ? { error: "tool_error" } : {}),
  };
  return { ...result, _meta: { ...result._meta, [HOPS_META]: [...hops, own] } };
}

/** The call in the metrics (its duration and outcome) and the log: a call its caller withdrew is an outcome of its own, whatever the handler made of it. */
function recordCall(c: AdmittedCall, outcome: ToolOutcome | undefined, started: number): void {
  const { o, ctx, spec } = c;
  const seconds = (performance.now() - started) / 1_000;
  toolCallSeconds.observe({ agent: o.agent, tool: spec.name }, seconds);
  const cancelled = c.call.sdk.mcpReq.signal.aborted;
  toolCalls.inc({
    agent: o.agent,
    tool: spec.name,
    outcome: cancelled ? "cancelled" : outcome === undefined ? "failed" : (outcome as CallToolResult).isError ? "tool_error" : "ok",
  });
  o.logger.info(
    {
      traceId: ctx.traceId,
      tool: spec.name,
      caller: ctx.callerChain.at(-1),
      hop: ctx.hop,
      ms: Math.round(performance.now() - started),
      ...(cancelled ? { cancelled: true } : { isError: outcome === undefined || Boolean((outcome as CallToolResult).isError) }),
    },
    cancelled ? "tool call cancelled by its caller" : "tool call",
  );
}
