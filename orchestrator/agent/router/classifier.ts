import type { Tool } from "@modelcontextprotocol/client";
import { Bm25Index } from "../../../src/text/bm25.ts";

/** What a router knows of an agent: from its Consul registration and its tool list. */
export interface RoutableAgent {
  name: string;
  description?: string;
  tags: readonly string[];
  tools: readonly Tool[];
}

export interface Candidate {
  agent: string;
  score: number;
  /** Share of the total score, 0..1. */
  confidence: number;
}

export type RouteDecision =
  | { kind: "route"; agent: string; confidence: number; candidates: Candidate[] }
  | { kind: "ambiguous"; candidates: Candidate[]; message: string }
  | { kind: "none"; candidates: Candidate[]; message: string };

/** Decides which agent should answer a message. An LLM-backed one may sit behind it. */
export interface IntentClassifier {
  readonly name: string;
  classify(message: string, agents: readonly RoutableAgent[]): RouteDecision | Promise<RouteDecision>;
}

/** Tag of agents that route rather than answer (the orchestrator): never routed to. */
export const ROUTER_TAG = "router";

/** The runner-up within this share of the best score makes a decision ambiguous. @default 0.8 */
export const DEFAULT_AMBIGUITY_RATIO = 0.8;
/** Below this BM25 score nothing matched well enough to route. @default 1.0 */
export const DEFAULT_MIN_SCORE = 1.0;

/** BM25 length normalisation for agent profiles (documents' default is 0.75). @default 0.3 */
export const ROUTING_B = 0.3;

/** Added to the total score when computing confidence shares. @default 1 */
export const CONFIDENCE_SMOOTHING = 1;

/** Field weights of an agent's profile: what it says it does counts most. */
const WEIGHTS = { askDescription: 3, description: 2, tags: 2, toolText: 1 } as const;

/**
 * Routes with BM25 over each agent's profile: its description and intents (Consul), the
 * description of its `ask` tool, and the names, titles and descriptions of its other
 * tools. Only agents with an `ask` tool, and not tagged "router", can be routed to. When the runner-up is close, it
 * says so instead of guessing.
 */
export class Bm25IntentClassifier implements IntentClassifier {
  readonly name = "bm25";
  private readonly ambiguityRatio: number;
  private readonly minScore: number;
  private cache: { key: string; index: Bm25Index<string> } | undefined;

  constructor(options: { ambiguityRatio?: number; minScore?: number } = {}) {
    this.ambiguityRatio = options.ambiguityRatio ?? DEFAULT_AMBIGUITY_RATIO;
    this.minScore = options.minScore ?? DEFAULT_MIN_SCORE;
  }

  classify(message: string, agents: readonly RoutableAgent[]): RouteDecision {
    const routable = agents.filter((a) => a.tools.some((t) => t.name === "ask") && !a.tags.includes(ROUTER_TAG));
    const hits = this.index(routable).search(message, routable.length);
    // Smoothed share: one weak match alone is not "100% sure".
    const total = hits.reduce((s, h) => s + h.score, 0) + CONFIDENCE_SMOOTHING;
    const candidates = hits.map((h) => ({ agent: h.item, score: round(h.score), confidence: round(h.score / total) }));
    const [best, second] = candidates;
    const names = routable.map((a) => a.name).join(", ") || "none";
    if (!best || best.score < this.minScore) {
      return {
        kind: "none",
        candidates,
        message: `No agent matches this well enough (agents: ${names}). Rephrase with more detail, or name the agent that should answer (mesh ask --agent <name>).`,
      };
    }
    if (second && second.score >= best.score * this.ambiguityRatio) {
      const close = candidates.filter((c) => c.score >= best.score * this.ambiguityRatio);
      return {
        kind: "ambiguous",
        candidates,
        message: `This could be for ${close.map((c) => `${c.agent} (${Math.round(c.confidence * 100)}%)`).join(" or ")}. Say which agent should answer (mesh ask --agent <name>).`,
      };
    }
    return { kind: "route", agent: best.agent, confidence: best.confidence, candidates };
  }

  private index(agents: readonly RoutableAgent[]): Bm25Index<string> {
    const key = agents.map((a) => `${a.name}:${a.tools.map((t) => t.name).join(",")}:${a.description ?? ""}`).join("|");
    if (this.cache?.key === key) return this.cache.index;
    // Mild length normalisation: a richer profile is not a worse match.
    const index = new Bm25Index<string>({ b: ROUTING_B });
    for (const a of agents) {
      const ask = a.tools.find((t) => t.name === "ask");
      const others = a.tools.filter((t) => t.name !== "ask");
      index.add(a.name, [
        [ask?.description ?? "", WEIGHTS.askDescription],
        [a.description ?? "", WEIGHTS.description],
        [
          a.tags
            .filter((t) => t !== "mcp")
            .join(" ")
            .replace(/-/g, " "),
          WEIGHTS.tags,
        ],
        [others.map((t) => `${t.name.replace(/_/g, " ")} ${t.title ?? ""} ${t.description ?? ""}`).join(" "), WEIGHTS.toolText],
      ]);
    }
    this.cache = { key, index };
    return index;
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
