import { createHash } from "node:crypto";
import type { MeshClient } from "../../src/client/meshClient.ts";
import type { MeshContext } from "../../src/context/meshContext.ts";
import { describeError } from "../../src/protocol/errors.ts";
import { resultText } from "../../src/protocol/results.ts";
import type { StepRun } from "./planner/run.ts";
import type { Plan } from "./planner/plan.ts";
import type { LlmCall } from "./planner/llm.ts";

// Asking before a change: what a plan would change, the reply that lets it, the calls a
// session keeps until then, and the key that makes each intended change happen once.

/** A reply that confirms the side effects the previous answer asked about. */
export const CONFIRMATION = /^(y|yes|yes please|confirm|confirmed|ok|okay|go ahead|do it|book it|file it|submit it|please do|sure)[.!]*$/i;

/** What a plan would change, and how to let it. */
export function confirmMessage(effects: readonly LlmCall[]): string {
  return `This would change something: ${effects
    .map((e) => `${e.agent}.${e.tool} ${JSON.stringify(e.args)}`)
    .join("; ")}. Reply "yes" in this session to go ahead (or ask again with confirmation: mesh ask --yes).`;
}

/** The calls a session keeps for a "yes" (the LLM planner's), if its facts hold any well-formed ones. */
export function asCalls(v: unknown): LlmCall[] | undefined {
  if (!Array.isArray(v) || v.length === 0) return undefined;
  const ok = v.every(
    (c) => c && typeof c === "object" && typeof c.agent === "string" && typeof c.tool === "string" && c.args && typeof c.args === "object",
  );
  return ok ? (v as LlmCall[]) : undefined;
}

/** Arguments known before anything runs (references to earlier steps shown as such). */
export function literalArgs(args: Plan["steps"][number]["args"]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).map(([k, v]) => [k, typeof v === "object" ? `<from ${v.$ref.step}>` : v]));
}

/** One key per intended effect: a repeated "yes" or a failover does not book twice. */
export function idempotencyKey(sessionId: string, question: string, step: string, args: Record<string, unknown>): string {
  return `ask-${createHash("sha256")
    .update(JSON.stringify([sessionId, question, step, args]))
    .digest("hex")
    .slice(0, 40)}`;
}

/** Runs the calls a "yes" confirmed (the LLM planner's), exactly as they were shown, one after another. */
export async function runConfirmedCalls(
  mesh: MeshClient,
  calls: readonly LlmCall[],
  sessionId: string,
  context: MeshContext,
): Promise<{ steps: StepRun[]; texts: string[] }> {
  const steps: StepRun[] = [];
  const texts: string[] = [];
  for (const [i, c] of calls.entries()) {
    const run: StepRun = {
      id: `c${i + 1}`,
      agent: c.agent,
      tool: c.tool,
      args: c.args,
      why: "confirmed by the user",
      status: "error",
      changes: true,
    };
    steps.push(run);
    texts.push(await runConfirmedCall(mesh, run, c, idempotencyKey(sessionId, JSON.stringify(calls), c.tool, c.args), context));
  }
  return { steps, texts };
}

/** One confirmed call, recorded in `run`; returns what it said (or how it failed). */
async function runConfirmedCall(mesh: MeshClient, run: StepRun, c: LlmCall, key: string, context: MeshContext): Promise<string> {
  const t0 = performance.now();
  try {
    const { result, instance } = await mesh.call(c.agent, c.tool, c.args, { context, idempotencyKey: key });
    run.instance = instance;
    run.status = result.isError ? "error" : "ok";
    if (result.isError) {
      run.failure = "business";
      run.error = resultText(result);
    }
    return resultText(result);
  } catch (e) {
    run.failure = "mesh";
    run.error = describeError(e);
    return `${c.agent}.${c.tool} failed: ${run.error}`;
  } finally {
    run.ms = Math.round((performance.now() - t0) * 10) / 10;
  }
}
