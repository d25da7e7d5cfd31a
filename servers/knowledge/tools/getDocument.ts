import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { KnowledgeDeps } from "../deps.ts";

export function getDocumentTool(deps: KnowledgeDeps): ToolSpec {
  return defineTool({
    name: "get_document",
    title: "Read a document",
    description: "The full text of one company document by id (ids come from search_documents or list_documents).",
    input: z.object({ doc_id: z.string().trim().min(1).max(200).describe('Document id, e.g. "expense-policy"') }),
    output: z.object({ id: z.string(), title: z.string(), category: z.string(), source: z.string(), text: z.string() }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: ({ doc_id }) => {
      const d = deps.corpus.get(doc_id);
      return textAndStructured({ ...d }, `# ${d.title}\n\n${d.text}`);
    },
  });
}
