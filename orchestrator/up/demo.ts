import type { CallToolResult } from "@modelcontextprotocol/client";
import type { MeshCaller } from "../../src/client/meshCaller.ts";
import { resultText } from "../../src/protocol/results.ts";
import { describeError } from "../../src/protocol/errors.ts";

export interface DemoCall {
  agent: string;
  tool: string;
  args: Record<string, unknown>;
  /** What the call shows about the mesh. */
  note: string;
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
    note: "BM25 over the handbook",
  },
  {
    agent: "orchestrator",
    tool: "ask",
    args: { question: "What is the take-home pay of Bob Okafor's manager?" },
    note: "the orchestrator plans: hr for the manager, then finance (which asks hr)",
  },
  { agent: "hr", tool: "get_employee", args: { employee_id: "E9999" }, note: "a business error comes back as isError" },
];

export async function runDemo(mesh: MeshCaller, calls: readonly DemoCall[] = DEMO_CALLS): Promise<DemoResult[]> {
  const out: DemoResult[] = [];
  for (const call of calls) {
    let instance: string | undefined;
    const started = performance.now();
    try {
      const r: CallToolResult = await mesh.callTool(call.agent, call.tool, call.args, {
        timeoutMs: 10_000,
        onInstance: (id) => (instance = id),
      });
      out.push({ ...call, instance, ok: !r.isError, text: resultText(r), ms: performance.now() - started });
    } catch (e) {
      out.push({ ...call, instance, ok: false, text: describeError(e), ms: performance.now() - started });
    }
  }
  return out;
}
