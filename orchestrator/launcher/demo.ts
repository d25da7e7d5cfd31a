import type { CallToolResult } from "@modelcontextprotocol/client";
import type { MeshCaller } from "../../src/client/meshCaller.ts";
import { resultText } from "../../src/protocol/results.ts";
import { describeError } from "../../src/protocol/errors.ts";
import * as z from "zod";
import { TASKS_ENVELOPE } from "../../src/protocol/keys.ts";
import type { MeshClient } from "../../src/client/meshClient.ts";

export interface DemoCall {
  agent: string;
  tool: string;
  args: Record<string, unknown>;
  /** What the call shows about the mesh. */
  note: string;
  /** Start it as a task (the Tasks extension) and poll it to its end. */
  task?: boolean;
}

export interface DemoResult extends DemoCall {
  instance: string | undefined;
  ok: boolean;
  text: string;
  ms: number;
}

/** A short tour: replicas taking turns, state in Consul KV, finance asking hr via discovery. */
export const DEMO_CALLS: readonly DemoCall[] = [
  { agent: "hr", tool: "find_employee", args: { query: "okafor" }, note: "directory search" },
  { agent: "hr", tool: "get_leave_balance", args: { employee_id: "E1002" }, note: "second hr replica takes its turn" },
  { agent: "finance", tool: "compute_net_pay", args: { employee_id: "E1002" }, note: "finance asks hr through Consul discovery" },
  { agent: "finance", tool: "get_budget", args: { department: "Engineering" }, note: "budget kept in Consul KV" },
  {
    agent: "knowledge",
    tool: "ask",
    args: { question: "How many vacation days carry over to next year?" },
    note: "BM25+ over the handbook's passages",
  },
  {
    agent: "orchestrator",
    tool: "ask",
    args: { question: "What is the take-home pay of Bob Okafor's manager?" },
    note: "the orchestrator plans: hr for the manager, then finance (which asks hr)",
  },
  {
    agent: "finance",
    tool: "run_payroll",
    args: { month: new Date().toISOString().slice(0, 7), pace_ms: 50 },
    note: "a long-running task: started at once, polled with tasks/get until done (any replica answers)",
    task: true,
  },
  { agent: "hr", tool: "get_employee", args: { employee_id: "E9999" }, note: "a business error comes back as isError" },
];

export async function runDemo(
  mesh: MeshCaller & Partial<Pick<MeshClient, "withAgent">>,
  calls: readonly DemoCall[] = DEMO_CALLS,
): Promise<DemoResult[]> {
  const out: DemoResult[] = [];
  for (const call of calls) {
    let instance: string | undefined;
    const started = performance.now();
    try {
      const r: CallToolResult = await mesh.callTool(call.agent, call.tool, call.args, {
        timeoutMs: 10_000,
        onInstance: (id) => (instance = id),
        ...(call.task ? { envelope: TASKS_ENVELOPE } : {}),
      });
      const handle = r as unknown as { resultType?: string; taskId?: string };
      if (call.task && handle.resultType === "task" && handle.taskId && mesh.withAgent) {
        const end = await followTask(mesh.withAgent.bind(mesh), call.agent, handle.taskId, 60_000);
        out.push({ ...call, instance, ok: end.ok, text: `task ${handle.taskId}: ${end.text}`, ms: performance.now() - started });
        continue;
      }
      out.push({ ...call, instance, ok: !r.isError, text: resultText(r), ms: performance.now() - started });
    } catch (e) {
      out.push({ ...call, instance, ok: false, text: describeError(e), ms: performance.now() - started });
    }
  }
  return out;
}

/** Polls a task with tasks/get until it ends; returns how it ended and the status messages seen. */
async function followTask(
  withAgent: MeshClient["withAgent"],
  agent: string,
  taskId: string,
  timeoutMs: number,
): Promise<{ ok: boolean; text: string }> {
  const deadline = Date.now() + timeoutMs;
  const seen: string[] = [];
  for (;;) {
    const t = (await withAgent(agent, (c) =>
      c.request({ method: "tasks/get", params: { taskId, _meta: TASKS_ENVELOPE } } as never, ANY_RESULT),
    )) as { status: string; statusMessage?: string; pollIntervalMs?: number; result?: CallToolResult; error?: { message: string } };
    if (t.statusMessage && seen.at(-1) !== t.statusMessage) seen.push(t.statusMessage);
    if (t.status === "completed")
      return { ok: !t.result?.isError, text: `completed after ${seen.length} status updates — ${t.result ? resultText(t.result) : ""}` };
    if (t.status === "failed" || t.status === "cancelled")
      return { ok: false, text: `${t.status} — ${t.error?.message ?? t.statusMessage ?? ""}` };
    if (Date.now() > deadline) return { ok: false, text: `still ${t.status} after ${timeoutMs} ms (${t.statusMessage ?? ""})` };
    await new Promise((r) => setTimeout(r, Math.min(t.pollIntervalMs ?? 1_000, 1_000)));
  }
}

const ANY_RESULT = z.object({}).passthrough();
