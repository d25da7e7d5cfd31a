import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Planner, type Plan } from "../../orchestrator/agent/planner/plan.ts";
import { failuresOf, runPlan } from "../../orchestrator/agent/planner/run.ts";
import { MeshError } from "../../src/protocol/errors.ts";
import type { MeshModel } from "../../orchestrator/agent/planner/model.ts";
import { plannerMesh } from "../helpers/plannerMesh.ts";

// Routing: the tuning table; held-out sets A to E, each a development set once it had been
// measured and its misses seen; set F, written before the changes made for E's misses and
// measured once after them (never used to tune: the measure). Compound questions likewise: the
// first set (built against), B to E (development), F (the measure).
const json = <T>(file: string) => JSON.parse(readFileSync(new URL(`../data/${file}`, import.meta.url), "utf8")) as T;
const TUNING = json<[string, string][]>("routing.json");
const DEV = [
  ...json<{ cases: [string, string[]][] }>("routing-heldout.json").cases,
  ...json<{ cases: [string, string[]][] }>("routing-heldout-b.json").cases,
  ...json<{ cases: [string, string[]][] }>("routing-heldout-c.json").cases,
  ...json<{ cases: [string, string[]][] }>("routing-heldout-d.json").cases,
  ...json<{ cases: [string, string[]][] }>("routing-heldout-e.json").cases,
];
const HELD_OUT = json<{ cases: [string, string[]][] }>("routing-heldout-f.json").cases;
type Compound = { q: string; agents: string[]; expect: string[]; confirm?: boolean };
const COMPOUND = json<{ cases: Compound[] }>("compound.json").cases;
const COMPOUND_DEV = ["compound-b.json", "compound-c.json", "compound-d.json", "compound-e.json"].flatMap(
  (f) => json<{ cases: Compound[] }>(f).cases,
);
const COMPOUND_HELD_OUT = json<{ cases: Compound[] }>("compound-f.json").cases;

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
  it(`held-out set (${HELD_OUT.length} phrasings nobody tuned on): at least 90%, no clear request to a wrong agent, "ambiguous" only where a person asks back`, () => {
    const { share, misses } = score(HELD_OUT);
    console.log(`held-out routing: ${(share * 100).toFixed(1)}%; misses: ${JSON.stringify(misses)}`);
    expect(share, JSON.stringify(misses, null, 1)).toBeGreaterThanOrEqual(0.9);
    // A clear request (a person would not ask back) is never sent elsewhere, nor asked back.
    const clear = misses.filter((m) => !m.want.includes("ambiguous"));
    expect(clear, JSON.stringify(clear, null, 1)).toEqual([]);
  });

  it(`development sets (held-out sets A to E once measured, ${DEV.length} phrasings): at least 90%`, () => {
    const { share, misses } = score(DEV);
    console.log(`development routing: ${(share * 100).toFixed(1)}%; misses: ${JSON.stringify(misses)}`);
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

  it(`held-out compound questions (set F, ${COMPOUND_HELD_OUT.length}, never used to tune): at least 90% (12 of 12 when measured)`, async () => {
    const missed: string[] = [];
    for (const c of COMPOUND_HELD_OUT) {
      const plan = planner.plan(model, c.q);
      const answer = plan.decision === "plan" ? (await runPlan(plan, mesh.call)).answer : (plan.message ?? "");
      if (!c.expect.every((fact) => answer.includes(fact))) missed.push(`${c.q} → ${answer.slice(0, 160)}`);
    }
    const share = (COMPOUND_HELD_OUT.length - missed.length) / COMPOUND_HELD_OUT.length;
    console.log(`held-out compound: ${(share * 100).toFixed(1)}%; missed: ${JSON.stringify(missed, null, 1)}`);
    expect(share).toBeGreaterThanOrEqual(0.9);
  });

  it.each(COMPOUND_DEV.map((c) => [c.q, c] as const))("development sets B-E: %s", async (_q, c) => {
    const plan = planner.plan(model, c.q);
    expect(plan.decision).toBe("plan");
    const run = await runPlan(plan, mesh.call);
    for (const fact of c.expect) expect(run.answer).toContain(fact);
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

describe("what did not happen is listed (mesh ask's exit code and --json)", () => {
  const booking = "Book 2 days of vacation for Bob Okafor starting 2026-12-21";

  it("everything done: no failures", async () => {
    const run = await runPlan(planner.plan(model, "Who is Bob Okafor's manager?"), mesh.call);
    expect(failuresOf(run.steps, run.unanswered)).toEqual([]);
  });

  it("a booking the agent refuses is a business failure of a change", async () => {
    const plan = planner.plan(model, booking);
    expect(plan.effects.length).toBeGreaterThan(0);
    const run = await runPlan(plan, async (step, args) =>
      step.sideEffect
        ? { result: { isError: true, content: [{ type: "text", text: "Not enough vacation leave" }] }, instance: "hr-mem" }
        : mesh.call(step, args),
    );
    expect(failuresOf(run.steps, run.unanswered)).toEqual([
      expect.objectContaining({
        kind: "business",
        agent: "hr",
        tool: "request_leave",
        changes: true,
        message: "Not enough vacation leave",
      }),
    ]);
  });

  it("a call that fails in the mesh is a mesh failure, listed once (not again as the part it left unanswered)", async () => {
    const plan = planner.plan(model, booking);
    const run = await runPlan(plan, async () => {
      throw new MeshError("NO_HEALTHY_INSTANCE", 'Agent "hr" has no instance passing its health check.', { retryable: true });
    });
    const failures = failuresOf(run.steps, run.unanswered);
    expect(failures.filter((f) => f.kind === "mesh" && f.changes)).toHaveLength(1);
    expect(failures.map((f) => f.message)).toEqual(failures.map(() => expect.stringContaining("no instance passing")));
    expect(failures.filter((f) => f.kind === "unanswered" && !f.step)).toEqual([]);
  });

  it("a name nobody knows is a part not answered", async () => {
    const run = await runPlan(planner.plan(model, "What is the take-home pay of Zed Xu's manager?"), mesh.call);
    expect(failuresOf(run.steps, run.unanswered)).toEqual([
      { kind: "unanswered", changes: false, message: expect.stringContaining('"Zed Xu"') },
    ]);
  });
});

describe("relations said in words", () => {
  it.each([
    ["Who does Ines Silva report to?", "Ines Silva's manager: Bob Okafor (E1002)."],
    ["Who does Priya Nair's manager report to?", "Priya Nair's manager's manager: Farid Haddad (E1006)."],
    ["Who reports to Maya Cohen?", "Maya Cohen's direct reports (4): Priya Nair (E1042)"],
    ["Who is Wanda Jensen's boss?", "Wanda Jensen's manager: Noah Schmidt (E1014)."],
  ])("%s", async (q, expected) => {
    const run = await runPlan(planner.plan(model, q), mesh.call);
    expect(run.answer).toContain(expected);
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
