import * as z from "zod";
import { textAndStructured } from "../protocol/results.ts";
import { defineTool, type ToolSpec } from "./tools.ts";

export interface Answer {
  answer: string;
  /** Where the answer came from (document ids, records, other agents' tools). */
  sources: string[];
}

/** Answers a natural-language question from an agent's own data. */
export type Answerer = (question: string, signal: AbortSignal) => Promise<Answer>;

const AskInput = z.object({
  question: z.string().trim().min(1, "question must not be empty").max(4_000).describe("The question, in plain language"),
});
const AskOutput = z.object({ agent: z.string(), answer: z.string(), sources: z.array(z.string()) });

/**
 * The `ask` tool every agent has: the orchestrator forwards a user's message here, as the
 * router does in AutoGen's HR/Finance demo. Input and output are the same for all agents.
 * Its description (domain and example questions) is what routers, and LLM clients choosing
 * a tool, read to decide which agent a question belongs to.
 */
export function askTool(agentName: string, domain: string, answer: Answerer, examples: readonly string[] = []): ToolSpec {
  return defineTool({
    name: "ask",
    title: `Ask the ${agentName} agent`,
    description:
      `Answers a natural-language question about ${domain} from this agent's own data, citing its sources.` +
      (examples.length ? ` Examples: ${examples.map((e) => `"${e}"`).join("; ")}.` : ""),
    input: AskInput,
    output: AskOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false, openWorldHint: false },
    handler: async ({ question }, call) => {
      const a = await answer(question, call.signal);
      return textAndStructured({ agent: agentName, answer: a.answer, sources: a.sources }, a.answer);
    },
  });
}
