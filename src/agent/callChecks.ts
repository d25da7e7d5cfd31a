import { ProtocolError, ProtocolErrorCode, type CallToolResult } from "@modelcontextprotocol/server";
import { fromMeta, idempotencyKeyProblem, rootContext, type MeshContext } from "../context/meshContext.ts";
import { currentVerifier } from "../http/principal.ts";
import type { Logger } from "../logger.ts";
import { DEADLINE_ERROR_CODE, HOP_LIMIT_ERROR_CODE, IDENTITY_ERROR_CODE } from "../protocol/codes.ts";
import { IDEMPOTENCY_KEY_META } from "../protocol/keys.ts";
import { argumentProblem } from "../protocol/limits.ts";
import { businessError } from "../protocol/results.ts";
import type { ToolRegistry, ToolSpec } from "./tools.ts";

/** A tools/call's params, as the pipeline reads them. */
export type CallParams = { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> };

/** The agent a call reaches, as the pipeline's steps name it in their messages and its log. */
export interface CallSite {
  readonly agent: string;
  readonly logger: Logger;
}

/*
 * The checks of the call pipeline (pipeline.ts), before anything is claimed or run. A call
 * that fails one is refused with a JSON-RPC error (logged with its trace), and nothing ran.
 */

/** Step 1: the MeshContext, decoded once (a new root for a caller that sent none). */
export function decode(params: CallParams): MeshContext {
  return fromMeta(params._meta) ?? rootContext({ caller: "external" });
}

/**
 * Step 1b: who the call is for. A signed identity (identity.ts) that checks out is the caller
 * the handler acts for and the owner of what it creates; one that does not (forged, expired,
 * made for another kind) refuses the call. An unsigned name in _meta is not an identity.
 */
export function checkIdentity(o: CallSite, ctx: MeshContext, params: CallParams) {
  const checked = currentVerifier()?.check(params._meta);
  if (checked?.ok === false) refuse(o, ctx, IDENTITY_ERROR_CODE, `Refused ${o.agent}.${params.name}: ${checked.reason}. Nothing ran.`);
  return checked?.ok ? checked.identity : undefined;
}

/** Step 2a: an idempotency key that is not one (wrong type, too long) is refused, not ignored. */
export function checkIdempotencyKey(o: CallSite, ctx: MeshContext, params: CallParams): void {
  const keyProblem = idempotencyKeyProblem(params._meta?.[IDEMPOTENCY_KEY_META]);
  if (keyProblem) refuse(o, ctx, ProtocolErrorCode.InvalidParams, `Invalid request for ${o.agent}.${params.name}: ${keyProblem}.`);
}

/**
 * Step 2: limits and validation, before anything is claimed or run. Arguments the model got
 * wrong are a tool error it can read and correct (SEP-1303), not a protocol error.
 */
export async function admit(
  o: CallSite & { readonly registry: ToolRegistry },
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
export function checkHop(o: CallSite, ctx: MeshContext, spec: ToolSpec): void {
  if (ctx.hop <= ctx.hopLimit) return;
  refuse(
    o,
    ctx,
    HOP_LIMIT_ERROR_CODE,
    `Hop limit of ${ctx.hopLimit} exceeded at ${o.agent}: ${[...ctx.callerChain, o.agent].join(" → ")} (${spec.name}).`,
  );
}

/** Step 4: a call that arrives after its deadline is not started; one that runs past it is cancelled. */
export function checkDeadline(o: CallSite, ctx: MeshContext, spec: ToolSpec): number | undefined {
  if (ctx.deadline === undefined) return undefined;
  const left = ctx.deadline - Date.now();
  if (left <= 0)
    refuse(o, ctx, DEADLINE_ERROR_CODE, `Deadline passed ${-left} ms before the call reached ${o.agent}.${spec.name}; not started.`);
  return ctx.deadline;
}

function refuse(o: CallSite, ctx: MeshContext, code: number, message: string): never {
  o.logger.warn({ traceId: ctx.traceId, chain: ctx.callerChain, hop: ctx.hop }, message);
  throw new ProtocolError(code, message);
}
