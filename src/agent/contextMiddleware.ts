import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { fromMeta, rootContext, runWithMeshContext, type MeshContext } from "../context/meshContext.ts";
import type { Logger } from "../logger.ts";
import { argumentProblem } from "../protocol/limits.ts";
import { refusalOf } from "./callRefusal.ts";
import { DEADLINE_ERROR_CODE, HOP_LIMIT_ERROR_CODE } from "../protocol/codes.ts";

type Request = { jsonrpc: "2.0"; id: string | number; method: string; params?: { _meta?: unknown; name?: unknown; arguments?: unknown } };

interface Call {
  ctx: MeshContext;
  tool: string;
  started: number;
  timer?: NodeJS.Timeout;
}

function isToolCall(m: JSONRPCMessage): m is JSONRPCMessage & Request {
  return "method" in m && m.method === "tools/call" && "id" in m;
}

/**
 * Makes every tools/call on this transport run inside its MeshContext: decoded from
 * `params._meta` (or a new root context for a caller that sent none), visible to the
 * handler through currentMeshContext(), to its onward calls and to every log line. Calls
 * past their hop limit or deadline are refused; a call still running at its deadline is
 * cancelled exactly as if the caller had cancelled it, and the caller gets an error, so a
 * callee never works past it. Each finished call is logged once with its trace id. Uses
 * only the public Transport hooks, so it works for HTTP and stdio alike.
 */
export function installMeshContext(transport: Transport, agentName: string, logger: Logger): void {
  const deliver = transport.onmessage;
  if (!deliver) throw new Error("installMeshContext must run after server.connect(transport)");
  const calls = new Map<string | number, Call>();
  const send = transport.send.bind(transport);

  transport.send = (message, options) => {
    if ("id" in message && ("result" in message || "error" in message)) {
      const call = calls.get(message.id as string | number);
      // A refusal or a mesh failure inside the handler leaves as the JSON-RPC error it stands for.
      const refusal = call && "result" in message ? refusalOf(message.result) : undefined;
      if (refusal) message = { jsonrpc: "2.0", id: message.id as string | number, error: refusal };
      if (call) {
        clearTimeout(call.timer);
        calls.delete(message.id as string | number);
        const isError = "error" in message || Boolean((message as { result?: { isError?: boolean } }).result?.isError);
        const ms = Math.round(performance.now() - call.started);
        logger.info(
          { traceId: call.ctx.traceId, tool: call.tool, caller: call.ctx.callerChain.at(-1), hop: call.ctx.hop, ms, isError },
          "tool call",
        );
      }
    }
    return send(message, options);
  };

  const refuse = (req: Request, code: number, message: string, ctx: MeshContext) => {
    logger.warn({ traceId: ctx.traceId, chain: ctx.callerChain, hop: ctx.hop }, message);
    // Through transport.send, not the captured original: middleware installed after this one
    // (idempotency) must see the refusal to release what it holds for the call.
    void transport.send({ jsonrpc: "2.0", id: req.id, error: { code, message } }, { relatedRequestId: req.id });
  };

  transport.onmessage = (message, extra) => {
    if (!isToolCall(message)) return deliver(message, extra);
    const ctx = fromMeta(message.params?._meta) ?? rootContext({ caller: "external" });
    const problem = argumentProblem(message.params?.arguments);
    if (problem) return refuse(message, -32_602, `Invalid arguments for ${agentName}.${String(message.params?.name)}: ${problem}.`, ctx);
    if (ctx.hop > ctx.hopLimit) {
      return refuse(
        message,
        HOP_LIMIT_ERROR_CODE,
        `Hop limit of ${ctx.hopLimit} exceeded at ${agentName}: ${ctx.callerChain.join(" → ")} → ${agentName}.`,
        ctx,
      );
    }
    const tool = typeof message.params?.name === "string" ? message.params.name : "?";
    const call: Call = { ctx, tool, started: performance.now() };
    if (ctx.deadline !== undefined) {
      const left = ctx.deadline - Date.now();
      if (left <= 0) {
        return refuse(message, DEADLINE_ERROR_CODE, `Deadline passed ${-left} ms before the call reached ${agentName}; not started.`, ctx);
      }
      call.timer = setTimeout(() => {
        logger.warn({ traceId: ctx.traceId, tool, requestId: message.id }, "deadline reached: cancelling the call");
        // The SDK sends nothing for a cancelled request: answer the caller ourselves.
        void transport.send(
          {
            jsonrpc: "2.0",
            id: message.id,
            error: { code: DEADLINE_ERROR_CODE, message: `Deadline passed while ${agentName}.${tool} was running; cancelled.` },
          },
          { relatedRequestId: message.id },
        );
        deliver(
          { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: message.id, reason: "deadline exceeded" } },
          extra,
        );
      }, left);
    }
    calls.set(message.id, call);
    runWithMeshContext(ctx, () => deliver(message, extra));
  };
}
