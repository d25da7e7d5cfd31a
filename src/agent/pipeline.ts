import {
  isInputRequiredResult,
  ProtocolError,
  ProtocolErrorCode,
  type CallToolResult,
  type ClientCapabilities,
  type McpServer,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { CLIENT_CAPABILITIES_META } from "../protocol/keys.ts";
import { currentVerifier, ownerOf, withIdentity } from "../http/principal.ts";
import { callsInFlight, toolCalls, toolCallSeconds } from "../telemetry/metrics.ts";
import { fromMeta, idempotencyKeyProblem, rootContext, runWithMeshContext, type MeshContext } from "../context/meshContext.ts";
import { IDEMPOTENCY_KEY_META, META_PREFIX } from "../protocol/keys.ts";
import { inSpan, SpanKind, tracingEnabled } from "../telemetry/tracing.ts";
import { collectHops, HOPS_META, hopId, type Hop } from "../telemetry/hops.ts";
import type { Logger } from "../logger.ts";
import { DEADLINE_ERROR_CODE, HOP_LIMIT_ERROR_CODE, IDENTITY_ERROR_CODE, MESH_FAILURE_ERROR_CODE } from "../protocol/codes.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { argumentProblem } from "../protocol/limits.ts";
import { BusinessError, businessError } from "../protocol/results.ts";
import { CallRefusal } from "./callRefusal.ts";
import type { IdempotencyLedger } from "./idempotency.ts";
import { declaresTasks, tasksCapabilityMissing, type TaskEngine } from "./tasks.ts";
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

type CallParams = { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> };

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

async function serveChecked(
  o: CallPipelineOptions,
  params: CallParams,
  sdk: ServerContext,
  sessionCapabilities: () => ClientCapabilities,
  ctx: MeshContext,
  started: number,
): Promise<ToolOutcome> {
  const keyProblem = idempotencyKeyProblem(params._meta?.[IDEMPOTENCY_KEY_META]);
  if (keyProblem) refuse(o, ctx, ProtocolErrorCode.InvalidParams, `Invalid request for ${o.agent}.${params.name}: ${keyProblem}.`);
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
  const signal = AbortSignal.any([sdk.mcpReq.signal, abort.signal]);
  const envelope = sdk.mcpReq.envelope as Record<string, unknown> | undefined;
  const clientCapabilities =
    envelope && CLIENT_CAPABILITIES_META in envelope ? (envelope[CLIENT_CAPABILITIES_META] as ClientCapabilities) : sessionCapabilities();
  if (spec.task && o.tasks) {
    if (declaresTasks(clientCapabilities)) {
      // A task: answered now with its handle; the handler runs detached from this request (its
      // deadline and cancellation), with the input responses tasks/update delivers.
      const tasks = o.tasks;
      if (spec.prepare) {
        const asked = await runWithMeshContext(ctx, () =>
          spec.prepare!(args, { signal, context: ctx, sdk, progress: progressOf(sdk), clientCapabilities }),
        );
        if (asked) return asked;
      }
      const gathered = sdk.mcpReq.inputResponses as Record<string, unknown> | undefined;
      const start = () =>
        tasks.create(spec.name, ownerOf(params._meta), gathered, (inputResponses, taskSignal, report) =>
          runWithMeshContext({ ...ctx, deadline: undefined }, () =>
            invoke(o, spec, args, {
              signal: taskSignal,
              context: { ...ctx, deadline: undefined },
              sdk: detachedContext(sdk, inputResponses, taskSignal),
              // A task's progress is its status message (SEP-2663 sends no progress notifications for tasks).
              progress: async (done, total, message) => report(message ?? (total ? `${done} of ${total}` : `${done}`)),
              clientCapabilities,
            }),
          ),
        ) as Promise<ToolOutcome>;
      // A repeat is answered with the first call's handle (the ledger's record): as the task is now.
      return ctx.idempotencyKey && o.ledger
        ? claimAndRun(o.ledger, ctx, params._meta, spec, args, start).then((handle) => tasks.current(handle, ownerOf(params._meta)))
        : start();
    }
    if (spec.task === "required") throw tasksCapabilityMissing(`${o.agent}.${spec.name} runs only as a task;`);
  }
  const run = () =>
    runWithMeshContext(ctx, () => invoke(o, spec, args, { signal, context: ctx, sdk, progress: progressOf(sdk), clientCapabilities }));
  const once = () => (ctx.idempotencyKey && o.ledger ? claimAndRun(o.ledger, ctx, params._meta, spec, args, run) : run());
  // A caller that asked for hop reports gets this call's (and its onward calls') with the result.
  const serverHop = ctx.reportHops ? hopId() : undefined;
  let hops: Hop[] = [];
  const work = serverHop ? collectHops(serverHop, once).then((c) => ((hops = c.hops), c.value)) : once();
  let outcome: ToolOutcome | undefined;
  callsInFlight.inc();
  try {
    outcome = await withDeadline(work, deadline, () => {
      abort.abort(new Error("deadline reached"));
      o.logger.warn({ traceId: ctx.traceId, tool: spec.name }, "deadline reached: cancelling the call");
      return `Deadline passed while ${o.agent}.${spec.name} was running; cancelled.`;
    });
    if (serverHop && !isInputRequiredResult(outcome)) {
      const result = outcome as CallToolResult;
      const own: Hop = {
        id: serverHop,
        ...(ctx.spanId ? { parent: ctx.spanId } : {}),
        kind: "server",
        service: o.agent,
        name: `${o.agent}.${spec.name}`,
        ...(o.instance ? { instance: o.instance() } : {}),
        start: performance.timeOrigin + started,
        ms: performance.now() - started,
        ...(result.isError ? { error: "tool_error" } : {}),
      };
      outcome = { ...result, _meta: { ...result._meta, [HOPS_META]: [...hops, own] } };
    }
    return outcome;
  } finally {
    callsInFlight.dec();
    const seconds = (performance.now() - started) / 1_000;
    toolCallSeconds.observe({ agent: o.agent, tool: spec.name }, seconds);
    // A call its caller withdrew is an outcome of its own, whatever the handler made of it.
    const cancelled = sdk.mcpReq.signal.aborted;
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
}

/** Step 1: the MeshContext, decoded once (a new root for a caller that sent none). */
function decode(params: CallParams): MeshContext {
  return fromMeta(params._meta) ?? rootContext({ caller: "external" });
}

/**
 * Step 1b: who the call is for. A signed identity (identity.ts) that checks out is the caller
 * the handler acts for and the owner of what it creates; one that does not (forged, expired,
 * made for another kind) refuses the call. An unsigned name in _meta is not an identity.
 */
function checkIdentity(o: CallPipelineOptions, ctx: MeshContext, params: CallParams) {
  const checked = currentVerifier()?.check(params._meta);
  if (checked?.ok === false) refuse(o, ctx, IDENTITY_ERROR_CODE, `Refused ${o.agent}.${params.name}: ${checked.reason}. Nothing ran.`);
  return checked?.ok ? checked.identity : undefined;
}

/**
 * Step 2: limits and validation, before anything is claimed or run. Arguments the model got
 * wrong are a tool error it can read and correct (SEP-1303), not a protocol error.
 */
async function admit(
  o: CallPipelineOptions,
  params: CallParams,
  ctx: MeshContext,
): Promise<{ ok: true; spec: ToolSpec; args: Record<string, unknown> } | { ok: false; result: CallToolResult }> {
  const problem = argumentProblem(params.arguments);
  if (problem) refuse(o, ctx, ProtocolErrorCode.InvalidParams, `Invalid arguments for ${o.agent}.${params.name}: ${problem}.`);
  const spec = o.registry.get(params.name);
  if (!spec) {
    refuse(
      o,
      ctx,
      ProtocolErrorCode.InvalidParams,
      `Tool ${params.name} not found: ${o.agent} offers ${o.registry.listing.map((t) => t.name).join(", ")}.`,
    );
  }
  const checked = await o.registry.validate(spec, params.arguments ?? {});
  if (!checked.ok) {
    o.logger.info({ traceId: ctx.traceId, tool: spec.name, issues: checked.issues }, "invalid arguments");
    return { ok: false, result: businessError(`Invalid arguments for tool ${spec.name}: ${checked.issues}`) };
  }
  return { ok: true, spec, args: checked.args };
}

/** Step 3: a call past its hop limit is refused with the chain that led here. */
function checkHop(o: CallPipelineOptions, ctx: MeshContext, spec: ToolSpec): void {
  if (ctx.hop <= ctx.hopLimit) return;
  refuse(
    o,
    ctx,
    HOP_LIMIT_ERROR_CODE,
    `Hop limit of ${ctx.hopLimit} exceeded at ${o.agent}: ${[...ctx.callerChain, o.agent].join(" → ")} (${spec.name}).`,
  );
}

/** Step 4: a call that arrives after its deadline is not started; one that runs past it is cancelled. */
function checkDeadline(o: CallPipelineOptions, ctx: MeshContext, spec: ToolSpec): number | undefined {
  if (ctx.deadline === undefined) return undefined;
  const left = ctx.deadline - Date.now();
  if (left <= 0)
    refuse(o, ctx, DEADLINE_ERROR_CODE, `Deadline passed ${-left} ms before the call reached ${o.agent}.${spec.name}; not started.`);
  return ctx.deadline;
}

/**
 * Steps 5-7: the idempotency claim, the handler, the record. The key is the caller's own
 * (scoped to who is asking). A request for input is no final result: the key is released.
 * The ledger's refusals (conflict, in progress, shared state unreachable) are JSON-RPC errors
 * with their own codes, never an internal error.
 */
async function claimAndRun(
  ledger: IdempotencyLedger,
  ctx: MeshContext,
  meta: Record<string, unknown> | undefined,
  spec: ToolSpec,
  args: Record<string, unknown>,
  run: () => Promise<ToolOutcome>,
): Promise<ToolOutcome> {
  try {
    return await ledger.run(
      ctx.idempotencyKey!,
      { tool: spec.name, args, deadline: ctx.deadline, traceId: ctx.traceId, owner: ownerOf(meta) },
      run,
    );
  } catch (e) {
    if (e instanceof CallRefusal) throw new ProtocolError(e.code, e.message, e.data);
    throw e;
  }
}

/** Step 6: the handler. Business failures become isError results; refusals and mesh failures, JSON-RPC errors. */
async function invoke(o: CallPipelineOptions, spec: ToolSpec, args: Record<string, unknown>, call: ToolCall): Promise<ToolOutcome> {
  let outcome: ToolOutcome;
  try {
    outcome = await spec.handler(args, call);
  } catch (e) {
    if (e instanceof CallRefusal) throw new ProtocolError(e.code, e.message, e.data);
    if (isMeshError(e)) {
      if (e.code === "HOP_LIMIT") throw new ProtocolError(HOP_LIMIT_ERROR_CODE, e.message, { code: e.code, retryable: e.retryable });
      // The agent's Consul failed under the handler: said without its address or key paths (the log has them).
      if (e.code.startsWith("CONSUL_")) {
        o.logger.warn({ tool: spec.name, code: e.code, err: e.message }, "Consul failed under a tool call");
        throw new ProtocolError(
          MESH_FAILURE_ERROR_CODE,
          `${o.agent}.${spec.name} could not complete: this agent's Consul failed under it (${e.code}). ${e.retryable ? "Try again shortly (with the same idempotency key for a change)." : "The reason is in the agent's log."}`,
          { code: e.code, retryable: e.retryable },
        );
      }
      throw new ProtocolError(MESH_FAILURE_ERROR_CODE, e.message, { code: e.code, retryable: e.retryable });
    }
    if (e instanceof BusinessError) return businessError(e.message);
    if (e instanceof ProtocolError) throw e;
    // The caller withdrew the call and the handler stopped: no failure of the handler's, no one waits for the answer.
    if (call.sdk.mcpReq.signal.aborted) return businessError(`${o.agent}.${spec.name} was cancelled by its caller.`);
    o.logger.error({ err: e, tool: spec.name }, "tool handler failed");
    return businessError(`${o.agent}.${spec.name} failed: ${describeError(e)}`);
  }
  if (isInputRequiredResult(outcome) || !spec.output) return outcome;
  const result = outcome as CallToolResult;
  if (result.isError || result.structuredContent === undefined) return result;
  const checked = spec.output.safeParse(result.structuredContent);
  if (!checked.success) {
    o.logger.error({ tool: spec.name, issues: checked.error.issues }, "tool result does not match its output schema");
    return businessError(`${o.agent}.${spec.name} produced a result that does not match its output schema; this is a bug in the agent.`);
  }
  return { ...result, structuredContent: checked.data as Record<string, unknown> };
}

/**
 * Races the work with the deadline. At the deadline the caller gets its error and the
 * handler's signal fires; the work itself goes on until it ends (an idempotency claim is
 * recorded only then), and its late outcome is dropped.
 */
async function withDeadline(work: Promise<ToolOutcome>, deadline: number | undefined, onDeadline: () => string): Promise<ToolOutcome> {
  if (deadline === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProtocolError(DEADLINE_ERROR_CODE, onDeadline())), Math.max(0, deadline - Date.now()));
  });
  work.catch(() => undefined); // a late failure after the deadline answered is not unhandled
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function refuse(o: CallPipelineOptions, ctx: MeshContext, code: number, message: string): never {
  o.logger.warn({ traceId: ctx.traceId, chain: ctx.callerChain, hop: ctx.hop }, message);
  throw new ProtocolError(code, message);
}

function progressOf(sdk: ServerContext): ToolCall["progress"] {
  const token = sdk.mcpReq._meta?.progressToken;
  return async (progress, total, message) => {
    if (token === undefined) return;
    await sdk.mcpReq.notify({
      method: "notifications/progress",
      params: { progressToken: token, progress, ...(total !== undefined ? { total } : {}), ...(message ? { message } : {}) },
    });
  };
}

/** The request context a task's handler sees once its request has been answered: no stream to write to, its own signal and input responses. */
function detachedContext(sdk: ServerContext, inputResponses: Record<string, unknown> | undefined, signal: AbortSignal): ServerContext {
  const gone = () =>
    Promise.reject(
      new ProtocolError(
        ProtocolErrorCode.InternalError,
        "This call runs as a task: no server requests; return inputRequired(...) instead.",
      ),
    );
  return {
    ...sdk,
    mcpReq: {
      ...sdk.mcpReq,
      signal,
      ...(inputResponses ? { inputResponses } : {}),
      send: gone,
      notify: async () => undefined,
      log: async () => undefined,
      elicitInput: gone,
      requestSampling: gone,
    },
  } as unknown as ServerContext;
}
