import { ProtocolError, ProtocolErrorCode, type CallToolResult, type InputRequiredResult } from "@modelcontextprotocol/server";
import { TASK_ID_SEPARATOR } from "./taskRequests.ts";
import type { View } from "./views.ts";

/** The refusal of a tools/call naming no tool of the view, with what the client can call instead. */
export function unknownToolRefusal(view: View, name: string, offered: () => string[]): ProtocolError {
  const hint =
    view.kind === "agent"
      ? `${view.agent} offers ${offered().join(", ") || "nothing right now (no healthy instance)"}`
      : "the gateway's tools are named <agent>__<tool>; list tools to see those available now";
  return new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool "${name}": ${hint}.`);
}

/** The dynamic view's answer for a name call_tool cannot resolve: a result the model can read. */
export function unknownToolResult(name: string, hint: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: `Unknown tool "${name}": ${hint}.` }] };
}

/**
 * Through the whole-mesh view a task's id names its agent, so tasks/* find their way back
 * (the same id on every gateway replica); other views and results go back as they are.
 */
export function withMeshTaskId(
  view: View,
  agent: string,
  result: CallToolResult | InputRequiredResult,
): CallToolResult | InputRequiredResult {
  const handle = result as { resultType?: string; taskId?: unknown };
  return view.kind === "mesh" && handle.resultType === "task" && typeof handle.taskId === "string"
    ? ({ ...result, taskId: `${agent}${TASK_ID_SEPARATOR}${handle.taskId}` } as CallToolResult)
    : result;
}
