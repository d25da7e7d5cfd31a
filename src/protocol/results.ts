import type { CallToolResult } from "@modelcontextprotocol/server";

/**
 * A successful tool result with both forms MCP clients use: `structuredContent` (checked
 * against the tool's output schema) and a text rendering for clients that read text only.
 */
export function textAndStructured<T extends Record<string, unknown>>(
  structured: T,
  text?: string,
): CallToolResult & { structuredContent: T } {
  return { content: [{ type: "text", text: text ?? JSON.stringify(structured, null, 2) }], structuredContent: structured };
}

/** The text blocks of a tool result joined by newlines (other content types are skipped). */
export function resultText(result: Pick<CallToolResult, "content">): string {
  return result.content
    .map((c) => (c.type === "text" ? c.text : ""))
    .filter(Boolean)
    .join("\n")
    .trim();
}

/**
 * A business failure (unknown employee, over budget): a tool result with `isError: true`
 * the model can read and act on, not a protocol error (STYLE.md rule 6).
 */
export function businessError(message: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: message }] };
}

/**
 * Thrown by domain code for a failure the caller can act on (unknown employee, over
 * budget). The agent kit answers it as an `isError` result; a MeshError (the mesh failed
 * under the agent) becomes a JSON-RPC error instead.
 */
export class BusinessError extends Error {
  override readonly name = "BusinessError";
}
