import { readFileSync } from "node:fs";
import { beforeAll, expect, it } from "vitest";
import type { AgentDefinition } from "../../src/agent/definition.ts";
import { connectInMemory, testRuntime } from "../helpers/inMemory.ts";
import { AGENTS } from "../../servers/index.ts";
import { Bm25IntentClassifier, type RoutableAgent } from "../../orchestrator/agent/router/classifier.ts";

// The routing table: [message, expected agent or "ambiguous"]. Kept as test data.
const TABLE = JSON.parse(readFileSync(new URL("../data/routing.json", import.meta.url), "utf8")) as [string, string][];
const agents: RoutableAgent[] = [];

beforeAll(async () => {
  // Profiles exactly as a router sees them in the mesh: description, intents, tool list.
  for (const [name, def] of Object.entries(AGENTS)) {
    const agent = def as AgentDefinition<unknown>;
    const client = await connectInMemory(agent, await agent.createDeps(testRuntime()));
    agents.push({ name, description: def.description, tags: ["mcp", ...def.intents], tools: (await client.listTools()).tools });
    await client.close();
  }
});

it(`routes the ${TABLE.length}-phrasing table with at least 90% correct, flagging ambiguity instead of guessing`, () => {
  expect(TABLE.length).toBeGreaterThanOrEqual(40);
  const classifier = new Bm25IntentClassifier();
  const outcomes = TABLE.map(([message, want]) => {
    const d = classifier.classify(message, agents);
    return { message, want, got: d.kind === "route" ? d.agent : "ambiguous" };
  });
  const correct = outcomes.filter((o) => o.got === o.want).length;
  const misses = outcomes.filter((o) => o.got !== o.want);
  expect(correct / TABLE.length, JSON.stringify(misses, null, 1)).toBeGreaterThanOrEqual(0.9);
  // A clear question is never sent to the wrong specialist: at worst it is flagged.
  expect(misses.filter((o) => o.want !== "ambiguous" && o.got !== "ambiguous")).toEqual([]);
  const ambiguous = outcomes.filter((o) => o.want === "ambiguous");
  expect(ambiguous.filter((o) => o.got === "ambiguous").length / ambiguous.length).toBeGreaterThanOrEqual(0.8);
});

it("explains ambiguity and no-match in words, with the candidates and their confidence", () => {
  const classifier = new Bm25IntentClassifier();
  const vague = classifier.classify("Tell me about leave policies", agents);
  expect(vague.kind).toBe("ambiguous");
  if (vague.kind === "ambiguous")
    expect(vague.message).toMatch(/^This could be for (hr|knowledge) \(\d+%\) or (hr|knowledge) \(\d+%\)\. Say which/);
  const none = classifier.classify("zebra quantum spaghetti", agents);
  expect(none.kind).toBe("none");
  const clear = classifier.classify("What's the take-home pay of Bob Okafor?", agents);
  expect(clear).toMatchObject({ kind: "route", agent: "finance" });
  if (clear.kind === "route") expect(clear.confidence).toBeGreaterThan(0.5);
});

it("routes only to agents that have an ask tool", () => {
  const classifier = new Bm25IntentClassifier();
  const foreign: RoutableAgent = {
    name: "everything",
    tags: ["mcp"],
    description: "vacation days budget handbook",
    tools: [{ name: "echo", inputSchema: { type: "object" } }],
  };
  const d = classifier.classify("How many vacation days do I have left?", [...agents, foreign]);
  expect(d.candidates.map((c) => c.agent)).not.toContain("everything");
});
