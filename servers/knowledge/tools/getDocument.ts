import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textAndStructured, toolResult } from "../../../src/protocol/results.ts";
import type { KnowledgeDeps } from "../deps.ts";

export function registerGetDocument(server: McpServer, deps: KnowledgeDeps): void {
  server.registerTool(
    "get_document",
    {
      title: "Read a document",
      description: "The full text of one company document by id (ids come from search_documents or list_documents).",
      inputSchema: { doc_id: z.string().trim().min(1).max(200).describe('Document id, e.g. "expense-policy"') },
      outputSchema: { id: z.string(), title: z.string(), category: z.string(), source: z.string(), text: z.string() },
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ doc_id }) =>
      toolResult(() => {
        const d = deps.corpus.get(doc_id);
        return textAndStructured({ ...d }, `# ${d.title}\n\n${d.text}`);
      }),
  );
}
