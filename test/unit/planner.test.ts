import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Planner, type Plan } from "../../orchestrator/planner/plan.ts";
import { runPlan } from "../../orchestrator/planner/run.ts";
import type { MeshModel } from "../../orchestrator/planner/model.ts";
import { plannerMesh } from "../helpers/plannerMesh.ts";

// Held-out phrasings (never used to tune the planner), the tuning table, and compound questions written before the planner.
const HELD_OUT = (
  JSON.parse(readFileSync(new URL("../data/routing-heldout.json", import.meta.url), "utf8")) as { cases: [string, string[]][] }
).cases;
const TUNING = JSON.parse(readFileSync(new URL("../data/routing.json", import.meta.url), "utf8")) as [string, string][];
const COMPOUND = (
  JSON.parse(readFileSync(new URL("../data/compound.json", import.meta.url), "utf8")) as {
    cases: { q: string; agents: string[]; expect: string[]; confirm?: boolean }[];
  }
).cases;

let mesh: Awaited<ReturnType<typeof plannerMesh>>;
let model: MeshModel;
const planner = new Planner();

beforeAll(async () => {
  mesh = await plannerMesh();
  model = mesh.model;
});
afterAll(() => mesh.close());

/** Who a plan has answer a message: its first part's agent, or "ambiguous" when it asks back. */
function routed(plan: Plan): string {
  return plan.decision === "plan" ? (plan.primary ?? "?") : "ambiguous";
}

function score(set: [string, string[]][]) {
  const outcomes = set.map(([message, want]) => ({ message, want, got: routed(planner.plan(model, message)) }));
  const misses = outcomes.filter((o) => !o.want.includes(o.got));
  return { share: (set.length - misses.length) / set.length, misses };
}

describe("routing as a person would", () => {
  it(`held-out set (${HELD_OUT.length} phrasings nobody tuned on): at least 90%`, () => {
    const { share, misses } = score(HELD_OUT);
    console.log(`held-out routing: ${(share * 100).toFixed(1)}%; misses: ${JSON.stringify(misses)}`);
    expect(share, JSON.stringify(misses, null, 1)).toBeGreaterThanOrEqual(0.9);
  });

  it(`tuning set (${TUNING.length} phrasings): at least 90%`, () => {
    const { share, misses } = score(TUNING.map(([m, a]) => [m, [a]]));
    console.log(`tuning routing: ${(share * 100).toFixed(1)}%; misses: ${JSON.stringify(misses)}`);
    expect(share, JSON.stringify(misses, null, 1)).toBeGreaterThanOrEqual(0.9);
  });
});

describe("compound questions, answered by the built-in planner", () => {
  it.each(COMPOUND.map((c) => [c.q, c] as const))("%s", async (_q, c) => {
    const plan = planner.plan(model, c.q);
    expect(plan.decision).toBe("plan");
    // A plan that books something says so before it runs; the others change nothing.
    expect(plan.effects.length > 0).toBe(c.confirm === true);
    const before = mesh.calls.length;
    const run = await runPlan(plan, mesh.call);
    for (const fact of c.expect) expect(run.answer).toContain(fact);
    expect(run.unanswered).toEqual([]);
    // Every agent that worked on it, including agent-to-agent calls (finance asks hr for salaries).
    const calls = mesh.calls.slice(before);
    const agents = new Set(calls.map((u) => u.split(".")[0]));
    for (const a of c.agents) expect([...agents], `calls: ${calls.join(", ")}`).toContain(a);
  });

  it(`answers at least 15 of them (there are ${COMPOUND.length})`, () => {
    expect(COMPOUND.length).toBeGreaterThanOrEqual(15);
  });
});

describe("no silent wrong answers", () => {
  it("a name nobody knows is said, and nothing is called", () => {
    const plan = planner.plan(model, "What is the take-home pay of Zed Xu's manager?");
    expect(plan.steps).toEqual([]);
    expect(plan.parts[0]).toMatchObject({ kind: "problem", message: expect.stringContaining('"Zed Xu"') });
  });

  it("a request missing what its tool needs asks for it, naming the tool", () => {
    const plan = planner.plan(model, "File a 1200 USD training expense for Engineering");
    expect(plan.primary).toBe("finance");
    expect(plan.steps).toEqual([]);
    expect(plan.parts[0]).toMatchObject({
      kind: "problem",
      message: expect.stringMatching(/finance\.submit_expense\) I need employee_id/),
    });
  });

  it("a step that fails is reported as the part not answered, not replaced by a neighbouring answer", async () => {
    const plan = planner.plan(model, "What is the net pay of Alice Chen's manager?");
    const run = await runPlan(plan, mesh.call);
    expect(run.answer).toMatch(/could not answer/i);
    expect(run.unanswered.length).toBe(1);
    expect(run.answer).not.toMatch(/net \d/);
  });
});

describe("conversations", () => {
  it("a follow-up's pronoun is who the last answer was about", async () => {
    const first = planner.plan(model, "Who is Rosa Moreno's manager?");
    const r1 = await runPlan(first, mesh.call);
    expect(r1.focus).toEqual({ type: "employee", id: "E1009", name: "Ines Silva" });
    const follow = planner.plan(model, "and her manager?", { focus: { ...r1.focus!, agents: ["hr"] } });
    const r2 = await runPlan(follow, mesh.call);
    expect(r2.answer).toContain("Ines Silva's manager: Bob Okafor (E1002)");
  });

  it("independent steps run in parallel, dependent ones after what they need", () => {
    const plan = planner.plan(model, "What's the net pay of Zoltan Szabo and the remaining budget of his department?");
    const byTool = Object.fromEntries(plan.steps.map((s) => [s.tool, s]));
    expect(byTool["compute_net_pay"]!.after).toEqual([]);
    expect(byTool["get_budget"]!.after).toEqual([byTool["get_employee"]!.id]);
  });
});
