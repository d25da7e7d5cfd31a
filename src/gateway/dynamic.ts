import type { CallToolResult, InputRequiredResult, Tool } from "@modelcontextprotocol/server";
import { textAndStructured } from "../protocol/results.ts";
import { Bm25Index } from "../text/bm25.ts";

/**
 * The dynamic view's three meta-tools: for a mesh with thousands of tools, the model sees
 * these instead of every tool, keeping its context small.
 */
export const DYNAMIC_TOOLS: Tool[] = [
  {
    name: "search_tools",
    title: "Search the mesh's tools",
    description: "Finds tools of the toolmesh mesh by what they do. Returns names (agent__tool) and descriptions, best first.",
    inputSchema: {
      type: "object",
      properties: { query: { type: "string", minLength: 1, maxLength: 500 }, limit: { type: "integer", minimum: 1, maximum: 50 } },
      required: ["query"],
    },
    annotations: { readOnlyHint: true, idempotentHint: true },
  },
  {
    name: "describe_tool",
    title: "Describe a tool",
    description: "The full definition of one tool of the mesh: description, input schema and annotations.",
    inputSchema: { type: "object", properties: { name: { type: "string", minLength: 1, maxLength: 200 } }, required: ["name"] },
    annotations: { readOnlyHint: true, idempotentHint: true },
  },
  {
    name: "call_tool",
    title: "Call a tool",
    description: "Calls a tool of the mesh by name (from search_tools) with its arguments.",
    inputSchema: {
      type: "object",
      properties: { name: { type: "string", minLength: 1, maxLength: 200 }, arguments: { type: "object" } },
      required: ["name"],
    },
  },
];

/** Search over the mesh's current tools (the index is rebuilt when the tool list changes). */
export class DynamicCatalog {
  private readonly tools: () => Tool[];
  private cache: { key: string; index: Bm25Index<Tool>; byName: Map<string, Tool> } | undefined;

  constructor(tools: () => Tool[]) {
    this.tools = tools;
  }

  handle(
    name: string,
    args: Record<string, unknown>,
    call: (tool: string, args: Record<string, unknown>) => Promise<CallToolResult | InputRequiredResult>,
  ): Promise<CallToolResult | InputRequiredResult> | CallToolResult {
    const { index, byName } = this.current();
    if (name === "search_tools") {
      const query = typeof args["query"] === "string" ? args["query"] : "";
      if (!query.trim()) return invalid('search_tools needs a non-empty query, e.g. {"query": "leave balance"}.');
      const limit = Number.isInteger(args["limit"]) ? Math.min(50, Math.max(1, args["limit"] as number)) : 10;
      const results = index
        .search(query, limit)
        .map((h) => ({ name: h.item.name, description: h.item.description ?? "", score: Math.round(h.score * 1000) / 1000 }));
      const text = results.length ? results.map((r) => `${r.name} — ${r.description}`).join("\n") : `No tool matches "${query}".`;
      return textAndStructured({ results }, text);
    }
    if (name === "describe_tool") {
      const tool = byName.get(String(args["name"] ?? ""));
      if (!tool) return invalid(`Unknown tool "${String(args["name"] ?? "")}": search_tools finds the tools available now.`);
      return textAndStructured({ tool: tool as unknown as Record<string, unknown> }, JSON.stringify(tool, null, 2));
    }
    if (name === "call_tool") {
      const target = String(args["name"] ?? "");
      const callArgs = args["arguments"];
      if (callArgs !== undefined && (typeof callArgs !== "object" || callArgs === null || Array.isArray(callArgs)))
        return invalid("call_tool's arguments must be an object.");
      return call(target, (callArgs ?? {}) as Record<string, unknown>);
    }
    return invalid(`Unknown tool "${name}": the dynamic gateway offers search_tools, describe_tool and call_tool.`);
  }

  private current(): { index: Bm25Index<Tool>; byName: Map<string, Tool> } {
    const tools = this.tools();
    const key = tools.map((t) => t.name).join("|");
    if (this.cache?.key !== key) {
      const index = new Bm25Index<Tool>();
      for (const t of tools)
        index.add(t, [
          [t.name.replace(/_/g, " "), 2],
          [t.title ?? "", 2],
          [t.description ?? "", 1],
        ]);
      this.cache = { key, index, byName: new Map(tools.map((t) => [t.name, t])) };
    }
    return this.cache;
  }
}

function invalid(text: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text }] };
}
