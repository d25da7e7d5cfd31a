// The gateway as an A2A 1.0 server (JSON-RPC + SSE), driven by software nobody here wrote: the
// official Python A2A SDK (a2a-sdk from PyPI, its virtualenv made once by scripts/pyenv.sh).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));

let consul: TestConsul;
let python = "";
const agents: TestAgent[] = [];
let gateway: TestAgent;

beforeAll(async () => {
  python = (await run("bash", ["scripts/pyenv.sh", "test/python/requirements-a2a.txt"], { cwd: root, timeout: 300_000 })).stdout.trim();
  consul = await startTestConsul();
  agents.push(...(await Promise.all(["hr", "finance", "orchestrator"].map((a) => spawnAgent(a, consul.address)))));
  await eventually(async () => (await consul.client.healthService("orchestrator", { passing: true })).value.length === 1, {
    timeoutMs: 5_000,
    what: "orchestrator passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
}, 600_000);
afterAll(async () => {
  await gateway?.process.stop(2_000);
  await Promise.all(agents.map((a) => a.process.stop(2_000)));
  await consul?.stop();
});

const a2a = (agent: string) => new URL(`/a2a/${agent}`, gateway.url).toString();

describe("A2A 1.0 at the gateway", () => {
  it("serves an Agent Card per agent kind: skills from its tools, the ask tool's example questions, its JSON-RPC endpoint", async () => {
    const res = await fetch(`${a2a("hr")}/.well-known/agent-card.json`);
    expect(res.status).toBe(200);
    const card = (await res.json()) as {
      name: string;
      skills: { id: string; examples: string[] }[];
      supportedInterfaces: { url: string; protocolBinding: string; protocolVersion: string }[];
    };
    expect(card.name).toBe("hr");
    expect(card.supportedInterfaces).toEqual([
      expect.objectContaining({ url: a2a("hr"), protocolBinding: "JSONRPC", protocolVersion: "1.0" }),
    ]);
    expect(card.skills.map((s) => s.id)).toEqual(expect.arrayContaining(["ask", "get_leave_balance", "request_leave"]));
    expect(card.skills[0]!.examples).toContain("Who does Ines Silva report to?");
    // An agent kind the mesh does not have, or one without an ask tool, has no card.
    expect((await fetch(`${a2a("nope")}/.well-known/agent-card.json`)).status).toBe(404);
  });

  it("the Python a2a-sdk client: card, send, get, cancel of a finished task refused, and streaming with status updates", async () => {
    const { stdout } = await run(python, ["test/python/a2a_client.py", a2a("hr")], { cwd: root, timeout: 120_000 });
    const out = JSON.parse(stdout) as {
      card: { name: string; streaming: boolean; skills: string[] };
      send: { state: string; answer: string };
      get: { id_matches: boolean; state: string };
      cancel_finished: string;
      stream: { states: string[]; answer: string };
    };
    expect(out.card).toMatchObject({ name: "hr", streaming: true });
    expect(out.send).toMatchObject({
      state: "TASK_STATE_COMPLETED",
      answer: "Bob Okafor (E1002) has 19 of 25 vacation days left in 2026.",
    });
    expect(out.get).toEqual({ id_matches: true, state: "TASK_STATE_COMPLETED" });
    expect(out.cancel_finished).toBe("TaskNotCancelableError");
    expect(out.stream.states).toEqual(["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]);
    expect(out.stream.answer).toMatch(/^Ines Silva reports to Bob Okafor \(E1002\)/);
  }, 180_000);

  it("the whole mesh as one A2A agent: the orchestrator plans across agents", async () => {
    const { stdout } = await run(python, ["test/python/a2a_client.py", a2a("orchestrator")], { cwd: root, timeout: 120_000 });
    const out = JSON.parse(stdout) as { card: { name: string }; send: { state: string; answer: string }; stream: { answer: string } };
    expect(out.card.name).toBe("orchestrator");
    expect(out.send.state).toBe("TASK_STATE_COMPLETED");
    expect(out.send.answer).toMatch(/vacation: 19 of 25 days left[\s\S]*— hr\.get_leave_balance/);
    expect(out.stream.answer).toMatch(/^Ines Silva's manager: Bob Okafor \(E1002\)/);
  }, 180_000);
});
