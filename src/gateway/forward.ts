import * as z from "zod";
import { currentPrincipal } from "../http/principal.ts";
import { PRINCIPAL_META } from "../protocol/keys.ts";
import { gatewayCalls } from "../telemetry/metrics.ts";
import {
  CLIENT_CAPABILITIES_META_KEY,
  LOG_LEVEL_META_KEY,
  ProtocolError,
  ProtocolErrorCode,
  type CallToolResult,
  type InputRequiredResult,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { protocolMessage } from "../client/outcome.ts";
import type { CallToolOptions } from "../client/meshCaller.ts";
import type { ClientPool } from "../client/pool.ts";
import { childContext, fromMeta, idempotencyKeyProblem, rootContext, type MeshContext } from "../context/meshContext.ts";
import { IDEMPOTENCY_KEY_META, META_PREFIX } from "../protocol/keys.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { inSpan, SpanKind, tracingEnabled } from "../telemetry/tracing.ts";
import { HOPS_META } from "../telemetry/hops.ts";
import { carryRawResult } from "../mcp/rawResults.ts";
import { recordedCall } from "./callLog.ts";
import type { GatewayCore, LegacySession } from "./core.ts";

type Params = { arguments?: Record<string, unknown>; _meta?: Record<string, unknown> };
/** The connections a call goes on (a 2025 session's own, or the shared ones), its session, and its arguments as the client wrote them. */
type Via = { pool: ClientPool | undefined; session: LegacySession | undefined; rawArguments?: string };

/**
 * Forwards one call through the mesh: the client's context continued (or its traceparent),
 * progress relayed, the client's cancellation passed on, and a 2026-07-28 input request of
 * the agent handed back to the client (a 2025-era client answers it through the SDK's
 * server requests on its session), its answers sent on to the agent on the retry. The
 * client's capabilities (what it can answer) and log level travel with the call, so the
 * agent asks only for what the client can give. The agent's JSON-RPC errors pass through
 * as they are; a mesh failure comes back as an isError result the model can read.
 */
export function forwardCall(
  gateway: GatewayCore,
  target: { agent: string; tool: string },
  params: Params,
  ctx: ServerContext,
  via: Via,
): Promise<CallToolResult | InputRequiredResult> {
  if (!tracingEnabled()) return forward(gateway, target, params, ctx, via);
  // The gateway's SERVER span (the child of the client's traceparent, or a new trace); its
  // attempts to the agent are its children.
  const meta = params._meta ?? {};
  return inSpan(
    {
      name: `tools/call ${target.agent}__${target.tool}`,
      kind: SpanKind.SERVER,
      ...(typeof meta["traceparent"] === "string" ? { traceparent: meta["traceparent"] } : {}),
      attributes: {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": `${target.agent}__${target.tool}`,
        ...(ctx.sessionId ? { "mcp.session.id": ctx.sessionId } : {}),
        "toolmesh.agent": target.agent,
        "toolmesh.gateway": true,
      },
    },
    () => forward(gateway, target, params, ctx, via),
    (r) => ((r as CallToolResult).isError ? "tool_error" : undefined),
  );
}

async function forward(
  gateway: GatewayCore,
  target: { agent: string; tool: string },
  params: Params,
  ctx: ServerContext,
  via: Via,
): Promise<CallToolResult | InputRequiredResult> {
  const meta = params._meta ?? {};
  const keyProblem = idempotencyKeyProblem(meta[IDEMPOTENCY_KEY_META]);
  if (keyProblem)
    throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Invalid request for ${target.agent}__${target.tool}: ${keyProblem}.`);
  let context: MeshContext;
  try {
    context = contextFor(meta, target.agent);
  } catch (e) {
    return errorResult(e);
  }
  const requestState = ctx.mcpReq.requestState<unknown>();
  const continuation = {
    ...(ctx.mcpReq.inputResponses ? { inputResponses: ctx.mcpReq.inputResponses } : {}),
    ...(typeof requestState === "string" ? { requestState } : {}),
  };
  // While the console watches, calls report their hops (for its waterfall); the client gets
  // them only if it asked itself.
  const clientAsked = context.reportHops === true;
  const watching = gateway.calls.watching;
  if (watching) context = { ...context, reportHops: true };
  const traced = { agent: target.agent, tool: target.tool, traceId: context.traceId, via: "mcp" as const, hops: watching };
  const callContext = context;
  try {
    const { result } = await recordedCall(gateway.calls, traced, () =>
      gateway.mesh.call(target.agent, target.tool, params.arguments ?? {}, callOptions(gateway, ctx, via, callContext, continuation)),
    );
    gatewayCalls.inc({ agent: target.agent, tool: target.tool, outcome: (result as CallToolResult).isError ? "tool_error" : "ok" });
    const answer = withoutEnvelope(clientAsked ? result : withoutHops(result));
    // Nothing but the agent's serverInfo stripped: its text can go back as the agent wrote it.
    carryRawResult(result, answer);
    return answer;
  } catch (e) {
    return failedCall(gateway, target, ctx, context.traceId, e);
  }
}

/** How the mesh sends the call on: the context, the client's envelope and identity, its signal, deadline, progress and continuation. */
function callOptions(
  gateway: GatewayCore,
  ctx: ServerContext,
  via: Via,
  context: MeshContext,
  continuation: Record<string, unknown>,
): CallToolOptions {
  const pool = via.pool;
  const progressToken = ctx.mcpReq._meta?.progressToken;
  return {
    context,
    // On the shared 2026-07-28 connections only: a relay's 2025-era session declared its client's capabilities itself.
    // The client's identity (its token's digest) goes too: a task it starts is its alone.
    envelope: { ...(pool ? {} : envelopeOf(ctx, via.session)), [PRINCIPAL_META]: currentPrincipal() },
    signal: ctx.mcpReq.signal,
    ...(pool ? { pool } : {}),
    // The deadline in force: the client's own if it sent a shorter one (errors name it), else the gateway's limit.
    timeoutMs: budgetOf(context, gateway.maxCallMs),
    idleTimeoutMs: gateway.idleTimeoutMs,
    relayInputRequests: true,
    ...(via.rawArguments !== undefined ? { rawArguments: via.rawArguments } : {}),
    ...(Object.keys(continuation).length ? { continuation } : {}),
    ...(progressToken !== undefined
      ? {
          onProgress: (p) =>
            void ctx.mcpReq.notify({ method: "notifications/progress", params: { progressToken, ...p } }).catch(() => undefined),
        }
      : {}),
  };
}

/**
 * A call that got no answer: cancelled by its client (an outcome of its own, not a failure),
 * the agent's JSON-RPC error (passed on as it is), or a mesh failure (an isError result).
 */
function failedCall(
  gateway: GatewayCore,
  target: { agent: string; tool: string },
  ctx: ServerContext,
  traceId: string,
  e: unknown,
): CallToolResult {
  if (ctx.mcpReq.signal.aborted) {
    // No answer reaches the client (the SDK and the fast path send none to a cancelled request):
    // the result, like the agent's own for a withdrawn call, is returned rather than thrown so
    // no one logs it as unexpected.
    gatewayCalls.inc({ agent: target.agent, tool: target.tool, outcome: "cancelled" });
    gateway.logger.info({ agent: target.agent, tool: target.tool, traceId }, "call through the gateway cancelled by its client");
    return { isError: true, content: [{ type: "text", text: `${target.agent}__${target.tool} was cancelled by its client.` }] };
  }
  gatewayCalls.inc({ agent: target.agent, tool: target.tool, outcome: "failed" });
  // The agent's own JSON-RPC error (invalid arguments, a missing client capability, a
  // tampered requestState) reaches the client as the agent sent it.
  if (e instanceof ProtocolError) throw new ProtocolError(e.code, protocolMessage(e), e.data);
  gateway.logger.warn({ agent: target.agent, tool: target.tool, traceId, err: describeError(e) }, "call through the gateway failed");
  return errorResult(e);
}

/** What is left of the client's own deadline, if it sent one shorter than the gateway's limit; else the limit. */
function budgetOf(context: MeshContext, maxCallMs: number): number {
  if (context.deadline === undefined) return maxCallMs;
  return Math.max(1, Math.min(maxCallMs, Math.round(context.deadline - Date.now())));
}

/**
 * The client's mesh context continued (gateway appended), or a new one continuing its
 * traceparent. The client's idempotency key is for this very call: it is carried on (an
 * onward call of an agent never inherits its caller's key, but the gateway forwards the
 * client's call itself).
 */
function contextFor(meta: Record<string, unknown>, agent: string): MeshContext {
  const incoming = fromMeta(meta);
  const fromMesh = Object.keys(meta).some((k) => k.startsWith(META_PREFIX));
  const key = incoming?.idempotencyKey;
  const ctx =
    incoming && fromMesh
      ? childContext(incoming, "gateway", agent)
      : rootContext({ caller: "gateway", ...(typeof meta["traceparent"] === "string" ? { traceparent: meta["traceparent"] } : {}) });
  return key ? { ...ctx, idempotencyKey: key } : ctx;
}

/**
 * Forwards a request other than tools/call (prompts/get, resources/read) to one agent: like
 * a call, its client's capabilities go with it, and an agent's input_required result goes
 * back to the client, whose answers (inputResponses, requestState) are sent on when it asks
 * again. The agent's JSON-RPC errors pass through as they are.
 */
export async function forwardRequest<R>(
  gateway: GatewayCore,
  agent: string,
  request: { method: "prompts/get" | "resources/read" | "tasks/get" | "tasks/update" | "tasks/cancel"; params: Record<string, unknown> },
  ctx: ServerContext,
  via: { pool: ClientPool | undefined; session: LegacySession | undefined },
): Promise<R> {
  const requestState = ctx.mcpReq.requestState<unknown>();
  const params = {
    ...request.params,
    _meta: {
      ...(via.pool ? {} : envelopeOf(ctx, via.session)),
      [PRINCIPAL_META]: currentPrincipal(),
      // Who it is for, signed (tasks/* are answered to their owner only).
      ...gateway.mesh.identityMeta(agent),
    },
    ...(ctx.mcpReq.inputResponses ? { inputResponses: ctx.mcpReq.inputResponses } : {}),
    ...(typeof requestState === "string" ? { requestState } : {}),
  };
  try {
    const result = await gateway.mesh.withAgent(
      agent,
      (c) =>
        (request.method.startsWith("tasks/")
          ? // Extension methods (the Tasks extension): sent with their own result schema, as the SDK asks.
            c.request({ method: request.method, params } as never, ANY_RESULT, { signal: ctx.mcpReq.signal })
          : c.request({ method: request.method, params } as never, { signal: ctx.mcpReq.signal, allowInputRequired: true })) as Promise<
          R & { _meta?: Record<string, unknown> }
        >,
      via.pool ? { pool: via.pool } : {},
    );
    return withoutEnvelope(result);
  } catch (e) {
    if (e instanceof ProtocolError) throw new ProtocolError(e.code, protocolMessage(e), e.data);
    throw e;
  }
}

/** What the client can answer and the log level it wants, as the agent must see them. */
function envelopeOf(ctx: ServerContext, session: LegacySession | undefined): Record<string, unknown> {
  if (!session) {
    // 2026-07-28: the client's own envelope, as it sent it (the SDK lifts it out of _meta).
    const meta = (ctx.mcpReq.envelope ?? {}) as Record<string, unknown>;
    return {
      ...(meta[CLIENT_CAPABILITIES_META_KEY] !== undefined ? { [CLIENT_CAPABILITIES_META_KEY]: meta[CLIENT_CAPABILITIES_META_KEY] } : {}),
      ...(meta[LOG_LEVEL_META_KEY] !== undefined ? { [LOG_LEVEL_META_KEY]: meta[LOG_LEVEL_META_KEY] } : {}),
    };
  }
  const level = session.logLevel();
  return {
    [CLIENT_CAPABILITIES_META_KEY]: session.server.getClientCapabilities() ?? {},
    ...(level !== undefined ? { [LOG_LEVEL_META_KEY]: level } : {}),
  };
}

/** The agent's result without the reserved keys of its own hop (the gateway's server adds its own). */
function withoutEnvelope<T extends { _meta?: Record<string, unknown> }>(result: T): T {
  const meta = result._meta;
  if (!meta || !Object.keys(meta).some((k) => k.startsWith(RESERVED_PREFIX))) return result;
  const kept = Object.fromEntries(Object.entries(meta).filter(([k]) => !k.startsWith(RESERVED_PREFIX)));
  const { _meta: _dropped, ...rest } = result;
  return (Object.keys(kept).length ? { ...rest, _meta: kept } : rest) as T;
}

/** A result without the hop report the gateway asked for on its own account. */
function withoutHops<T extends { _meta?: Record<string, unknown> }>(result: T): T {
  if (!result._meta || !(HOPS_META in result._meta)) return result;
  const { [HOPS_META]: _hops, ...kept } = result._meta;
  const { _meta: _dropped, ...rest } = result;
  return (Object.keys(kept).length ? { ...rest, _meta: kept } : rest) as T;
}

/** The result of a request the gateway relays as it is (the agent validated it). */
const ANY_RESULT = z.object({}).passthrough();

/** Keys of `_meta` the MCP specification reserves for the protocol itself. */
const RESERVED_PREFIX = "io.modelcontextprotocol/";

function errorResult(e: unknown): CallToolResult {
  const code = isMeshError(e) ? ` (${e.code})` : "";
  return { isError: true, content: [{ type: "text", text: `toolmesh${code}: ${describeError(e)}` }] };
}
