// The planner on held-out sets written on 2026-12-02 by a tester who never saw the planner,
// its code or its sets (test/data/heldout-g2/README.md): four points of view, compound
// questions, side-effect traps and genuine requests, and a third-party agent in a new domain
// (facilities: rooms, desks, bookings keyed by hr's ids; test/fixtures/facilities/) written
// before any tuning. Measured once, on the planner of issue 23; never tuned on. The floors
// below are the measured band, so a regression fails; issue 23's targets (routing ≥ 95%,
// compound ≥ 80%) are not met on these sets — docs/orchestrator-and-planner.md says so (held-out
// set G2).
import { readFileSync } from "node:fs";
import type { CallToolResult, Client, Tool } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Planner, type Plan } from "../../orchestrator/agent/planner/plan.ts";
import { MeshModel, type PlannerAgent } from "../../orchestrator/agent/planner/model.ts";
import { runPlan, type StepCaller } from "../../orchestrator/agent/planner/run.ts";
import type { AgentDefinition } from "../../src/agent/definition.ts";
import { vocabularyUri, type Vocabulary } from "../../src/agent/vocabulary.ts";
import { AGENTS } from "../../servers/index.ts";
import { facilitiesAgent } from "../fixtures/facilities/index.ts";
import { connectInMemory, testRuntime } from "../helpers/inMemory.ts";

const json = <T>(file: string) => JSON.parse(readFileSync(new URL(`../data/heldout-g2/${file}`, import.meta.url), "utf8")) as T;
type Routing = { cases: [string, string[]][] };
type Compound = { cases: { q: string; expect: string[] }[] };
type Traps = { cases: { q: string; state_changing_allowed: boolean; expect_tool?: string }[] };

interface Mesh {
  model: MeshModel;
  call: StepCaller;
  tools: Map<string, Tool>;
  close(): Promise<void>;
}

async function mesh(extra: Record<string, AgentDefinition<unknown>>): Promise<Mesh> {
  const clients: Record<string, Client> = {};
  const callTool = async (agent: string, tool: string, args: Record<string, unknown>) =>
    (await clients[agent]!.callTool({ name: tool, arguments: args })) as CallToolResult;
  const agents: PlannerAgent[] = [];
  const tools = new Map<string, Tool>();
  for (const [name, def] of Object.entries({ ...AGENTS, ...extra }) as [string, AgentDefinition<unknown>][]) {
    const client = await connectInMemory(def, await def.createDeps(testRuntime({ callTool, close: async () => {} })));
    clients[name] = client;
    const read = await client.readResource({ uri: vocabularyUri(name) }).catch(() => undefined);
    const vocabulary = read ? (JSON.parse((read.contents[0] as { text: string }).text) as Vocabulary).entries : [];
    const listed = (await client.listTools()).tools;
    for (const t of listed) tools.set(`${name}.${t.name}`, t);
    agents.push({ name, description: def.description, tags: ["mcp", ...def.intents], tools: listed, vocabulary });
  }
  return {
    model: new MeshModel(agents),
    call: async (step, args) => ({ result: await callTool(step.agent, step.tool, args), instance: `${step.agent}-mem` }),
    tools,
    close: async () => void (await Promise.all(Object.values(clients).map((c) => c.close()))),
  };
}

const planner = new Planner();
const routed = (plan: Plan) => (plan.decision === "plan" ? (plan.primary ?? "?") : "ambiguous");
/** The plan's steps whose tool does not declare itself read-only: what --yes would let run. */
const changing = (m: Mesh, plan: Plan) =>
  plan.steps.filter((s) => !m.tools.get(`${s.agent}.${s.tool}`)?.annotations?.readOnlyHint).map((s) => `${s.agent}.${s.tool}`);

function routing(m: Mesh, file: string) {
  const out = { right: 0, asked: 0, wrong: 0, n: 0, misses: [] as string[] };
  for (const [q, want] of json<Routing>(file).cases) {
    out.n++;
    const plan = planner.plan(m.model, q);
    const got = routed(plan);
    if (want.includes(got) || (want.includes("none") && got === "ambiguous")) out.right++;
    else if (got === "ambiguous") {
      out.asked++;
      out.misses.push(`asked back: ${q}`);
    } else {
      out.wrong++;
      out.misses.push(`${got}, not ${want.join("/")}: ${q}`);
    }
  }
  return out;
}

async function compound(m: Mesh, file: string) {
  const out = { right: 0, declined: 0, answeredWrong: 0, n: 0, misses: [] as string[] };
  for (const c of json<Compound>(file).cases) {
    out.n++;
    const plan = planner.plan(m.model, c.q);
    let answer = plan.message ?? "";
    let complete = false;
    if (plan.decision === "plan" && changing(m, plan).length === 0) {
      const run = await runPlan(plan, m.call);
      answer = run.answer;
      complete = run.unanswered.length === 0;
    }
    if (c.expect.every((f) => answer.replace(/(\d),(\d)/g, "$1$2").includes(f))) out.right++;
    // Not right, and the answer does not say it is incomplete: a candidate confident wrong answer.
    else if (complete) {
      out.answeredWrong++;
      out.misses.push(`answered: ${c.q} → ${answer.slice(0, 160)}`);
    } else out.declined++;
  }
  return out;
}

function traps(m: Mesh) {
  const out = { sideEffects: [] as string[], requestsRight: 0, requests: 0 };
  for (const c of json<Traps>("side-effects-pov.json").cases) {
    const plan = planner.plan(m.model, c.q);
    const ch = changing(m, plan);
    if (!c.state_changing_allowed) {
      if (ch.length) out.sideEffects.push(`${c.q} → ${ch.join(", ")}`);
    } else {
      out.requests++;
      if (c.expect_tool && ch.includes(c.expect_tool)) out.requestsRight++;
    }
  }
  return out;
}

let base: Mesh;
let withFacilities: Mesh;
beforeAll(async () => {
  base = await mesh({});
  withFacilities = await mesh({ facilities: facilitiesAgent as AgentDefinition<unknown> });
});
afterAll(async () => {
  await base?.close();
  await withFacilities?.close();
});

describe("held-out set G2 (independent, four points of view, a new third-party agent)", () => {
  it("no question plans a state-changing tool, with or without the new agent (25 traps)", () => {
    for (const m of [base, withFacilities]) {
      const t = traps(m);
      console.log(
        `side-effect traps: ${t.sideEffects.length}/25 planned a change; genuine requests planned right: ${t.requestsRight}/${t.requests}`,
      );
      expect(t.sideEffects).toEqual([]);
      expect(t.requestsRight).toBeGreaterThanOrEqual(7);
    }
  });

  it("routing from four points of view: the measured band (81 of 100), no more than 7 to a wrong agent", () => {
    const sets = ["routing-pov-manager.json", "routing-pov-phone.json", "routing-pov-clerk.json", "routing-pov-nonnative.json"].map(
      (f) => ({
        f,
        ...routing(base, f),
      }),
    );
    for (const s of sets)
      console.log(`${s.f}: ${s.right}/${s.n} right, ${s.asked} asked back, ${s.wrong} misrouted; ${JSON.stringify(s.misses)}`);
    expect(sets.reduce((a, s) => a + s.right, 0)).toBeGreaterThanOrEqual(81);
    expect(sets.reduce((a, s) => a + s.wrong, 0)).toBeLessThanOrEqual(7);
  });

  it("compound questions: the measured band (9 of 20 right)", async () => {
    const c = await compound(base, "compound-pov.json");
    console.log(
      `compound: ${c.right}/${c.n} right, ${c.declined} declined, ${c.answeredWrong} answered wrong; ${JSON.stringify(c.misses)}`,
    );
    expect(c.right).toBeGreaterThanOrEqual(9);
  });

  it("a third-party agent nobody tuned for (facilities): the measured band (15 of 23 routed, 6 of 15 answered)", async () => {
    const r = routing(withFacilities, "routing-thirdparty.json");
    const c = await compound(withFacilities, "compound-thirdparty.json");
    console.log(
      `third party: routing ${r.right}/${r.n} (${r.asked} asked back, ${r.wrong} misrouted); compound ${c.right}/${c.n}; ${JSON.stringify([...r.misses, ...c.misses])}`,
    );
    expect(r.right).toBeGreaterThanOrEqual(15);
    expect(c.right).toBeGreaterThanOrEqual(6);
  });
});
