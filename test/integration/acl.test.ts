// The mesh against a Consul with ACLs on, default deny, and least-privilege tokens (the
// policies docs/security.md documents): registration, discovery, KV state and sessions, and
// `mesh register`; a token lacking a right gets an error that names it.
import type { CallToolResult } from "@modelcontextprotocol/client";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { resultText } from "../../src/protocol/results.ts";
import { MeshClient } from "../../src/client/meshClient.ts";
import { ConsulClient } from "../../src/consul/client.ts";
import { startAclConsul, POLICIES, type AclConsul } from "../helpers/acl.ts";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { eventually, untilInstances } from "../helpers/eventually.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));

let consul: AclConsul;
const agents: Record<string, TestAgent> = {};
const tokens: Record<string, string> = {};
const clients: MeshClient[] = [];

beforeAll(async () => {
  consul = await startAclConsul();
  for (const name of ["hr", "finance", "knowledge"]) tokens[name] = await consul.token(name, POLICIES.agent(name));
  tokens["orchestrator"] = await consul.token("orchestrator", POLICIES.orchestrator);
  tokens["reader"] = await consul.token("reader", POLICIES.reader);
  tokens["gateway"] = await consul.token("gateway", POLICIES.gateway);
  tokens["registrar"] = await consul.token("registrar", POLICIES.registrar);
  const started = await Promise.all(
    ["hr", "finance", "knowledge", "orchestrator"].map((n) => spawnAgent(n, consul.address, { env: { CONSUL_HTTP_TOKEN: tokens[n] } })),
  );
  for (const a of started) agents[a.instanceId.split("-")[0]!] = a;
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(Object.values(agents).map((a) => a.process.stop(2_000)));
  await consul.stop();
});

function reader(): MeshClient {
  const c = new MeshClient({ consul: new ConsulClient({ address: consul.address, token: tokens["reader"] }), callerName: "test" });
  clients.push(c);
  return c;
}

it("default deny: without a token Consul shows nothing", async () => {
  const anonymous = new ConsulClient({ address: consul.address });
  expect(Object.keys((await anonymous.catalogServices()).value).filter((s) => s !== "consul")).toEqual([]);
  anonymous.destroy();
});

it("each agent registers with a token that may write only its own service, and is passing", async () => {
  await eventually(
    async () => {
      for (const name of ["hr", "finance", "knowledge", "orchestrator"]) {
        const passing = (await consul.client.healthService(name, { passing: true })).value;
        if (!passing.some((e) => e.id === agents[name]!.instanceId)) return false;
      }
      return true;
    },
    { timeoutMs: 5_000, what: "every agent passing" },
  );
});

it("discovery and agent-to-agent calls with read-only tokens; KV state under the agent's own prefix", async () => {
  const client = reader();
  await untilInstances(client, "finance", 1);
  // finance finds hr through Consul with its own token, then calls it.
  const netPay = await client.callTool("finance", "compute_net_pay", { employee_id: "E1002" });
  expect(netPay.isError, resultText(netPay)).toBeFalsy();
  // finance writes its KV prefix (an expense) with its own token.
  const expense = await client.callTool("finance", "submit_expense", {
    employee_id: "E1004",
    department: "Sales",
    category: "meals",
    amount: 12,
    description: "ACL test lunch",
  });
  expect(expense.isError, resultText(expense)).toBeFalsy();
  // (Each instance also keeps a presence key there, registrar.ts: not counted.)
  expect((await consul.client.kvKeys("toolmesh/state/finance/")).filter((k) => !k.includes("/_instances/")).length).toBeGreaterThan(0);
});

it("orchestrator sessions live in KV under toolmesh/sessions/ and carry across calls", async () => {
  const client = reader();
  await untilInstances(client, "orchestrator", 1);
  const ask = (question: string) =>
    client.callTool("orchestrator", "ask", { question, session_id: "acl-session-1" }) as Promise<CallToolResult>;
  const first = await ask("What is the referral bonus?");
  expect(first.isError, resultText(first)).toBeFalsy();
  expect(first.structuredContent).toMatchObject({ session_saved: true });
  const second = await ask("And how do I claim it?");
  expect(second.structuredContent).toMatchObject({ session_saved: true });
  expect(await consul.client.kvKeys("toolmesh/sessions/")).toContain("toolmesh/sessions/acl-session-1");
});

it("mesh register: allowed for the names the token may write, refused with the missing permission named otherwise", async () => {
  const env = { CONSUL_HTTP_ADDR: consul.address, CONSUL_HTTP_TOKEN: tokens["registrar"]! };
  const ok = await mesh(["register", "--name", "ext-weather", "--url", agents["hr"]!.url], env);
  expect(ok.code, ok.stderr).toBe(0);
  const refused = await mesh(["register", "--name", "weather", "--url", agents["hr"]!.url], env);
  expect(refused.code).toBe(3);
  expect(refused.stderr).toMatch(/Consul at .* refused to register service "weather".*lacks permission 'service:write' on "weather"/s);
  expect(refused.stderr).toMatch(/Give the token \(CONSUL_HTTP_TOKEN\) the permission named here/);
  // The read-only token lists the mesh but cannot register anything.
  const listed = await mesh(["agents", "--json"], { CONSUL_HTTP_ADDR: consul.address, CONSUL_HTTP_TOKEN: tokens["reader"]! });
  expect(listed.code, listed.stderr).toBe(0);
  expect(listed.stdout).toContain("ext-weather");
});

it("an agent whose token lacks service:write says so in its log and keeps serving", async () => {
  const agent = await spawnAgent("knowledge", consul.address, { env: { CONSUL_HTTP_TOKEN: tokens["reader"] } });
  agents["knowledge-reader"] = agent;
  await eventually(() => agent.logs().some((l) => l["msg"] === "cannot register in Consul; serving anyway and retrying"), {
    timeoutMs: 5_000,
    what: "the registration error in the log",
  });
  const line = agent.logs().find((l) => l["msg"] === "cannot register in Consul; serving anyway and retrying")!;
  expect(String(line["err"])).toMatch(/lacks permission 'service:write' on "knowledge"/);
  expect(line["code"]).toBe("CONSUL_FORBIDDEN");
  expect((await fetch(agent.url.replace(/\/mcp$/, "/healthz"))).status).toBe(200);
});

it("no Consul token appears in the agents' logs, in mesh status or in Consul meta", async () => {
  const secrets = Object.values(tokens);
  const status = await mesh(["status", "--json"], { CONSUL_HTTP_ADDR: consul.address, CONSUL_HTTP_TOKEN: tokens["reader"]! });
  expect(status.code, status.stderr).toBe(0);
  const meta = JSON.stringify((await consul.client.healthService("hr")).value.map((e) => e.meta));
  const texts = [...Object.values(agents).map((a) => readFileSync(a.logFile, "utf8")), status.stdout, status.stderr, meta];
  const leaks = secrets.filter((s) => texts.some((t) => t.includes(s)));
  expect(leaks).toEqual([]);
});

it("tasks with least privilege: an agent's task records under its own prefix, the gateway's A2A tasks under its, and its console reads both", async () => {
  const gateway = await spawnAgent(GATEWAY, consul.address, {
    readyMessage: "gateway ready",
    env: { CONSUL_HTTP_TOKEN: tokens["gateway"]! },
  });
  try {
    const c = ["--consul", consul.address, "--token", tokens["reader"]!];
    // finance runs a payroll as a task: its record in toolmesh/tasks/finance/ with finance's own token.
    const started = await mesh(["call", "finance.run_payroll", '{"month":"2026-02","pace_ms":0}', "--task", "--json", ...c]);
    expect(started.code, started.stderr).toBe(0);
    const { task } = JSON.parse(started.stdout) as { task: { taskId: string } };
    const waited = await mesh(["tasks", "wait", "finance", task.taskId, "--json", ...c]);
    expect(JSON.parse(waited.stdout)).toMatchObject({ status: "completed" });
    expect(await consul.client.kvKeys("toolmesh/tasks/finance/")).toContain(`toolmesh/tasks/finance/${task.taskId}`);
    // An A2A message through the gateway: its task in toolmesh/a2a-tasks/ with the gateway's token.
    const a2a = await fetch(new URL("/a2a/hr", gateway.url), {
      method: "POST",
      headers: { "content-type": "application/json", "a2a-version": "1.0" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "SendMessage",
        params: { message: { role: "ROLE_USER", messageId: "acl-a2a-1", parts: [{ text: "Who does Ines Silva report to?" }] } },
      }),
    });
    const sent = (await a2a.json()) as { result?: { task?: { id: string; status?: { state?: string } } }; error?: unknown };
    expect(sent.result?.task?.status?.state, JSON.stringify(sent)).toBe("TASK_STATE_COMPLETED");
    expect((await consul.client.kvKeys("toolmesh/a2a-tasks/hr/")).length).toBe(1);
    // The console lists both (and counts sessions) with nothing more than the gateway's token.
    const work = await fetch(new URL("/ui/api/work", gateway.url));
    expect(work.status).toBe(200);
    const listed = (await work.json()) as { tasks: { kind: string; taskId: string }[]; conversations: number };
    expect(listed.tasks).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: "mcp", taskId: task.taskId }),
        expect.objectContaining({ kind: "a2a", taskId: sent.result!.task!.id }),
      ]),
    );
    expect(listed.conversations).toBeGreaterThanOrEqual(1); // the orchestrator's session above
  } finally {
    await gateway.process.stop(2_000);
  }
}, 60_000);
