import type { IncomingMessage, ServerResponse } from "node:http";
import { DRAINING_ERROR_CODE, OVERLOADED_ERROR_CODE } from "../protocol/codes.ts";
import { overloadRefusals } from "../telemetry/metrics.ts";
import { refuseBatchMembers } from "./batchAdmission.ts";
import { requestIdOf } from "./request.ts";
import { sendJson, sendJsonRpcError } from "./responses.ts";

/**
 * The admission of JSON-RPC work, over the plain HTTP serving below it: a draining instance
 * refuses new work (tool calls, 2025-era sessions), and tool calls past the concurrency limit
 * are refused with a fast 503 OVERLOADED before they start, one by one in a batch. A refused
 * call never started, so its caller may safely send it to another replica.
 */
export class CallAdmission {
  /** Set once the instance shuts down: no new work from then on. */
  draining = false;
  /** Tool calls running now (admitted, their response not closed yet). */
  calls = 0;
  /** Requests refused for the limit (a batch counts once). */
  overloaded = 0;

  private readonly maxCalls: number;

  /** @param maxCalls tool calls run at once (POSITIVE_INFINITY: no limit) */
  constructor(maxCalls: number) {
    this.maxCalls = maxCalls;
  }

  /**
   * Admits the work a request's JSON body carries, counting its tool calls until the response
   * closes; returns false when it answered the request itself with a refusal. A batch whose
   * calls fit only in part runs those that fit; the others are answered with the error a
   * single call gets, in the batch's own response (batchAdmission.ts).
   */
  admit(req: IncomingMessage, res: ServerResponse, body: unknown): boolean {
    if (this.draining && carriesNewWork(body)) {
      sendJsonRpcError(
        res,
        503,
        DRAINING_ERROR_CODE,
        "This agent instance is draining (shutting down) and takes no new calls; call another instance.",
        { "Retry-After": "1" },
        requestIdOf(body),
      );
      return false;
    }
    const calls = toolCallIds(body);
    if (calls.length === 0) return true;
    const admitted = Math.min(calls.length, Math.max(0, this.maxCalls - this.calls));
    if (admitted < calls.length && !this.refuseExcess(req, res, body, calls, admitted)) return false;
    this.calls += admitted;
    res.once("close", () => (this.calls -= admitted));
    return true;
  }

  /** Refuses the calls past `admitted`: the whole request when none fit (false), else the batch's excess members (true). */
  private refuseExcess(
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    calls: (string | number | null)[],
    admitted: number,
  ): boolean {
    this.overloaded++;
    overloadRefusals.inc(calls.length - admitted);
    const message = `Overloaded: this instance is running ${this.calls + admitted} tool calls, its limit (${this.maxCalls}); the call was not started. Call another instance or retry shortly.`;
    if (admitted === 0) {
      if (Array.isArray(body)) sendOverloadedBatch(res, calls, message);
      else sendJsonRpcError(res, 503, OVERLOADED_ERROR_CODE, message, { "Retry-After": "1" }, requestIdOf(body));
      return false;
    }
    refuseBatchMembers(req, {
      ids: new Set(calls.slice(admitted).filter((id) => id !== null)),
      code: OVERLOADED_ERROR_CODE,
      message,
    });
    return true;
  }
}

function isToolCall(body: unknown): boolean {
  return (body as { method?: unknown } | null)?.method === "tools/call";
}

/**
 * The tool calls a body carries, by id, in order: one request (counted even without an id,
 * as always), or the requests of a JSON-RPC batch (a member without an id is a notification,
 * which runs nothing; duplicate ids count once, as the batch's answer cannot tell them apart).
 */
function toolCallIds(body: unknown): (string | number | null)[] {
  if (!Array.isArray(body)) return isToolCall(body) ? [requestIdOf(body)] : [];
  const ids = new Set<string | number>();
  for (const m of body) {
    const id = requestIdOf(m);
    if (isToolCall(m) && id !== null) ids.add(id);
  }
  return [...ids];
}

/** A batch none of whose tool calls fit: each gets the error it would get alone (HTTP 503), nothing started. */
function sendOverloadedBatch(res: ServerResponse, ids: (string | number | null)[], message: string): void {
  const answers = ids.map((id) => ({ jsonrpc: "2.0", error: { code: OVERLOADED_ERROR_CODE, message }, id }));
  sendJson(res, 503, answers, { "Retry-After": "1" });
}

/** A request that starts work: a tool call, or a 2025-era session (alone or in a batch). */
function carriesNewWork(body: unknown): boolean {
  return (Array.isArray(body) ? body : [body]).some((m) => {
    const method = (m as { method?: unknown } | null)?.method;
    return method === "tools/call" || method === "initialize";
  });
}
