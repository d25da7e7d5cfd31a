import { ProtocolError, ProtocolErrorCode, type McpServer } from "@modelcontextprotocol/server";
import * as z from "zod";
import { CLIENT_CAPABILITIES_META } from "../protocol/keys.ts";
import { ForgedIdentityError, ownerOf } from "../http/principal.ts";
import { IDENTITY_ERROR_CODE } from "../protocol/codes.ts";
import type { TaskEngine } from "./taskEngine.ts";
import { declaresTasks, tasksCapabilityMissing } from "./tasks.ts";

/** The request's owner (principal.ts), from its transport identity and an intermediary's _meta. */
function owner(params: Record<string, unknown>, ctx: { mcpReq: { _meta?: Record<string, unknown> } }): string {
  const meta = (params["_meta"] ?? ctx.mcpReq._meta) as Record<string, unknown> | undefined;
  try {
    return ownerOf(meta);
  } catch (e) {
    if (e instanceof ForgedIdentityError) throw new ProtocolError(IDENTITY_ERROR_CODE, e.message);
    throw e;
  }
}

const TaskId = z.object({ taskId: z.string().min(1).max(200) }).passthrough();
// inputResponses checked after the capability gate (a client without the extension gets -32021 first).
const Update = z.object({ taskId: z.string().min(1).max(200), inputResponses: z.unknown().optional() }).passthrough();

/**
 * tasks/get, tasks/update and tasks/cancel (SEP-2663) on one server instance, for requests
 * whose client declared the Tasks extension (others get -32021).
 */
export function installTasks(server: McpServer, tasks: TaskEngine): void {
  const gate = (method: string, envelope: Record<string, unknown> | undefined) => {
    const caps = (envelope?.[CLIENT_CAPABILITIES_META] ?? server.server.getClientCapabilities() ?? {}) as Record<string, unknown>;
    if (!declaresTasks(caps)) throw tasksCapabilityMissing(`${method}:`);
  };
  server.server.setRequestHandler("tasks/get", { params: TaskId }, (params, ctx) => {
    gate("tasks/get", ctx.mcpReq.envelope as Record<string, unknown> | undefined);
    return tasks.get(params.taskId, owner(params, ctx));
  });
  server.server.setRequestHandler("tasks/update", { params: Update }, (params, ctx) => {
    gate("tasks/update", ctx.mcpReq.envelope as Record<string, unknown> | undefined);
    // The SDK lifts a request's inputResponses (an MRTR field) into the context.
    const responses = params.inputResponses ?? ctx.mcpReq.inputResponses ?? {};
    if (typeof responses !== "object" || responses === null || Array.isArray(responses))
      throw new ProtocolError(
        ProtocolErrorCode.InvalidParams,
        "Invalid params for tasks/update: inputResponses must be an object keyed by input request.",
      );
    return tasks.update(params.taskId, owner(params, ctx), responses as Record<string, unknown>);
  });
  server.server.setRequestHandler("tasks/cancel", { params: TaskId }, (params, ctx) => {
    gate("tasks/cancel", ctx.mcpReq.envelope as Record<string, unknown> | undefined);
    return tasks.cancel(params.taskId, owner(params, ctx));
  });
}
