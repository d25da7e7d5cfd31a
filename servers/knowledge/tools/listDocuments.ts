import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { KnowledgeDeps } from "../deps.ts";

export function listDocumentsTool(deps: KnowledgeDeps): ToolSpec {
  return defineTool({
    name: "list_documents",
    title: "List company documents",
    description: `Ids and titles of the company documents, optionally of one category (${deps.corpus.categories().join(", ")}).`,
    input: z.object({ category: z.string().trim().max(100).optional().describe("Only documents of this category") }),
    output: z.object({ documents: z.array(z.object({ id: z.string(), title: z.string(), category: z.string() })) }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: ({ category }) => {
      const documents = deps.corpus.list(category).map((d) => ({ id: d.id, title: d.title, category: d.category }));
      const text =
        documents.length === 0
          ? `No documents in category "${category}". Categories: ${deps.corpus.categories().join(", ")}.`
          : documents.map((d) => `${d.id} — ${d.title} (${d.category})`).join("\n");
      return textAndStructured({ documents }, text);
    },
  });
}
