import { isInputRequiredResult, ProtocolError, type CallToolResult } from "@modelcontextprotocol/server";
import type { MeshContext } from "../context/meshContext.ts";
import { ownerOf } from "../http/principal.ts";
import { DEADLINE_ERROR_CODE, HOP_LIMIT_ERROR_CODE, MESH_FAILURE_ERROR_CODE } from "../protocol/codes.ts";
import { describeError, isMeshError } from "../protocol/errors.ts";
import { BusinessError, businessError } from "../protocol/results.ts";
import type { CallSite } from "./callChecks.ts";
import { CallRefusal } from "./callRefusal.ts";
import type { IdempotencyLedger } from "./idempotency.ts";
import type { ToolCall, ToolOutcome, ToolSpec } from "./tools.ts";

/*
 * The steps of the call pipeline (pipeline.ts) that run the tool, once every check passed:
 * the idempotency claim, the handler, the record, within the call's deadline.
 */

/**
 * Steps 5-7: the idempotency claim, the handler, the record. The key is the caller's own
 * (scoped to who is asking). A request for input is no final result: the key is released.
 * The ledger's refusals (conflict, in progress, shared state unreachable) are JSON-RPC errors
 * with their own codes, never an internal error.
 */
export async function claimAndRun(
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
export async function invoke(o: CallSite, spec: ToolSpec, args: Record<string, unknown>, call: ToolCall): Promise<ToolOutcome> {
  let outcome: ToolOutcome;
  try {
    outcome = await spec.handler(args, call);
  } catch (e) {
    return handlerFailure(o, spec, call, e);
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

/** What a handler's throw comes to: a refusal or mesh failure thrown as a JSON-RPC error, anything else an isError result. */
function handlerFailure(o: CallSite, spec: ToolSpec, call: ToolCall, e: unknown): ToolOutcome {
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

/**
 * Races the work with the deadline. At the deadline the caller gets its error and the
 * handler's signal fires; the work itself goes on until it ends (an idempotency claim is
 * recorded only then), and its late outcome is dropped.
 */
export async function withDeadline(
  work: Promise<ToolOutcome>,
  deadline: number | undefined,
  onDeadline: () => string,
): Promise<ToolOutcome> {
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
