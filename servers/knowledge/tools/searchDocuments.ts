import * as z from "zod";
import { textAndStructured } from "../../../src/protocol/results.ts";
import { defineTool, type ToolSpec } from "../../../src/agent/tools.ts";
import type { KnowledgeDeps } from "../deps.ts";

export function searchDocumentsTool(deps: KnowledgeDeps): ToolSpec {
  return defineTool({
    name: "search_documents",
    title: "Search company documents",
    description: "Full-text search (BM25) over the handbook and policies. Returns the best passages with their document and score.",
    input: z.object({
      query: z.string().trim().min(1, "query must not be empty").max(1_000).describe("What to look for"),
      limit: z.number().int().min(1).max(20).default(5).describe("Most passages to return"),
    }),
    output: z.object({
      results: z.array(z.object({ docId: z.string(), title: z.string(), source: z.string(), passage: z.string(), score: z.number() })),
    }),
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: ({ query, limit }) => {
      const results = deps.corpus
        .search(query, limit)
        .map((h) => ({ docId: h.docId, title: h.title, source: h.source, passage: h.text, score: h.score }));
      const text =
        results.length === 0
          ? `No passage matches "${query}".`
          : results.map((r, i) => `${i + 1}. ${r.title} [${r.source}] (score ${r.score})\n${r.passage}`).join("\n\n");
      return textAndStructured({ results }, text);
    },
  });
}
