import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import type { KnowledgeDeps } from "../deps.ts";

export function registerListDocuments(server: McpServer, deps: KnowledgeDeps): void {
  server.registerTool(
    "list_documents",
    {
      title: "List company documents",
      description: `Ids and titles of the company documents, optionally of one category (${deps.corpus.categories().join(", ")}).`,
      inputSchema: { category: z.string().trim().max(100).optional().describe("Only documents of this category") },
      outputSchema: { documents: z.array(z.object({ id: z.string(), title: z.string(), category: z.string() })) },
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ category }) => {
      const documents = deps.corpus.list(category).map((d) => ({ id: d.id, title: d.title, category: d.category }));
      const text =
        documents.length === 0
          ? `No documents in category "${category}". Categories: ${deps.corpus.categories().join(", ")}.`
          : documents.map((d) => `${d.id} — ${d.title} (${d.category})`).join("\n");
      return textAndStructured({ documents }, text);
    },
  );
}
