import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textAndStructured, toolResult } from "../protocol/results.ts";

export interface Answer {
  answer: string;
  /** Where the answer came from (document ids, records, other agents' tools). */
  sources: string[];
}

/** Answers a natural-language question from an agent's own data. */
export type Answerer = (question: string, signal: AbortSignal) => Promise<Answer>;

/**
 * The `ask` tool every agent has: the orchestrator forwards a user's message here, as the
 * router does in AutoGen's HR/Finance demo. Input and output are the same for all agents.
 * Its description (domain and example questions) is what routers, and LLM clients choosing
 * a tool, read to decide which agent a question belongs to.
 */
export function registerAskTool(
  server: McpServer,
  agentName: string,
  domain: string,
  answer: Answerer,
  examples: readonly string[] = [],
): void {
  server.registerTool(
    "ask",
    {
      title: `Ask the ${agentName} agent`,
      description:
        `Answers a natural-language question about ${domain} from this agent's own data, citing its sources.` +
        (examples.length ? ` Examples: ${examples.map((e) => `"${e}"`).join("; ")}.` : ""),
      inputSchema: {
        question: z.string().trim().min(1, "question must not be empty").max(4_000).describe("The question, in plain language"),
      },
      outputSchema: { agent: z.string(), answer: z.string(), sources: z.array(z.string()) },
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    },
    ({ question }, extra) =>
      toolResult(async () => {
        const a = await answer(question, extra.signal);
        return textAndStructured({ agent: agentName, answer: a.answer, sources: a.sources }, a.answer);
      }),
  );
}
