// Tasks across the mesh (SEP-2663): a long-running finance tool started through the gateway
// runs as a task whose record lives in Consul KV, so any replica answers for it, a cancel
// reaches the replica running it, and the death of that replica is reported, never hidden.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const TASKS = "io.modelcontextprotocol/tasks";

let consul: TestConsul;
let gateway: TestAgent;
const finance: TestAgent[] = [];
let hr: TestAgent;

beforeAll(async () => {
  consul = await startTestConsul();
  [hr] = await Promise.all([spawnAgent("hr", consul.address)]);
  finance.push(...(await Promise.all([spawnAgent("finance", consul.address), spawnAgent("finance", consul.address)])));
  await eventually(async () => (await consul.client.healthService("finance", { passing: true })).value.length === 2, {
    timeoutMs: 5_000,
    what: "two finance replicas passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
}, 60_000);
afterAll(async () => {
  await gateway.process.stop(2_000);
  await Promise.all([...finance, hr].map((a) => a.process.stop(2_000)));
  await consul.stop();
});

/** One 2026-07-28 request from a client that declares the Tasks extension; returns the JSON-RPC message. */
async function rpc(
  url: string,
  method: string,
  params: Record<string, unknown>,
  capabilities: Record<string, unknown> = { extensions: { [TASKS]: {} } },
  headers: Record<string, string> = {},
): Promise<{ result?: Record<string, unknown>; error?: { code: number; message: string } }> {
  const name = method === "tools/call" ? (params["name"] as string) : (params["taskId"] as string | undefined);
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": method,
      ...(name ? { "mcp-name": name } : {}),
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientCapabilities": capabilities,
          "io.modelcontextprotocol/clientInfo": { name: "tasks-test", version: "1" },
        },
      },
    }),
  });
  const text = await res.text();
  if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
    const data = text
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>);
    return data.find((m) => "result" in m || "error" in m) as never;
  }
  return JSON.parse(text) as never;
}

const passthrough = () => new URL("/agents/finance/mcp", gateway.url).toString();

async function startPayroll(month: string, paceMs: number): Promise<string> {
  const created = await rpc(passthrough(), "tools/call", { name: "run_payroll", arguments: { month, pace_ms: paceMs } });
  expect(created.result).toMatchObject({ resultType: "task", status: "working" });
  return created.result!["taskId"] as string;
}

async function until(url: string, taskId: string, statuses: string[], timeoutMs: number) {
  const seen = await eventually(
    async () => {
      const r = await rpc(url, "tasks/get", { taskId });
      return statuses.includes(r.result?.["status"] as string) ? r.result : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `task ${taskId} ${statuses.join("/")}` },
  );
  return seen.value!;
}

describe("run_payroll as a task, through the gateway", () => {
  it("answers at once with a task; progress shows in its status message; the result comes back through the gateway", async () => {
    const taskId = await startPayroll("2026-10", 60);
    const working = await until(passthrough(), taskId, ["working"], 5_000);
    expect(working).toMatchObject({ taskId, resultType: "complete", pollIntervalMs: 1000 });
    await eventually(
      async () => /of 51 employees paid/.test(String((await rpc(passthrough(), "tasks/get", { taskId })).result?.["statusMessage"])),
      {
        timeoutMs: 10_000,
        what: "progress in the status message",
      },
    );
    const done = await until(passthrough(), taskId, ["completed"], 30_000);
    const result = done["result"] as { structuredContent: { employees: number; month: string } };
    expect(result.structuredContent).toMatchObject({ employees: 51, month: "2026-10" });
  }, 60_000);

  it("a task started on one replica is answered, result included, by the other", async () => {
    const [a, b] = finance as [TestAgent, TestAgent];
    const created = await rpc(a.url, "tools/call", { name: "run_payroll", arguments: { month: "2026-04", pace_ms: 0 } });
    const taskId = created.result!["taskId"] as string;
    const done = await until(b.url, taskId, ["completed"], 30_000);
    expect(done).toMatchObject({ status: "completed", result: { structuredContent: { employees: 51, month: "2026-04" } } });
  }, 60_000);

  it("through the whole-mesh view /mcp too: the task id names its agent, and tasks/get there follows it to the result", async () => {
    const url = gateway.url;
    const created = await rpc(url, "tools/call", { name: "finance__run_payroll", arguments: { month: "2026-02", pace_ms: 0 } });
    expect(created.result).toMatchObject({ resultType: "task", taskId: expect.stringMatching(/^finance~[0-9a-f-]{36}$/) });
    const taskId = created.result!["taskId"] as string;
    const done = await until(url, taskId, ["completed"], 30_000);
    expect(done).toMatchObject({ taskId, status: "completed", result: { structuredContent: { employees: 51, month: "2026-02" } } });
    for (const bogus of ["nope", "finance~nope", "hr~whatever", "~x"])
      expect((await rpc(url, "tasks/get", { taskId: bogus })).error).toMatchObject({ code: -32602 });
  }, 60_000);

  it("a cancel sent to any replica stops the task where it runs", async () => {
    const [a, b] = finance as [TestAgent, TestAgent];
    const created = await rpc(a.url, "tools/call", { name: "run_payroll", arguments: { month: "2026-09", pace_ms: 500 } });
    const taskId = created.result!["taskId"] as string;
    await until(b.url, taskId, ["working"], 5_000);
    expect((await rpc(b.url, "tasks/cancel", { taskId })).result).toEqual(expect.objectContaining({ resultType: "complete" }));
    const ended = await until(a.url, taskId, ["cancelled", "completed", "failed"], 10_000);
    expect(ended["status"]).toBe("cancelled");
  }, 30_000);

  it("a task is visible only to the client that started it: another token at the gateway, or another caller, gets 'unknown task'", async () => {
    const tokenA = "client-a-token-0123456789";
    const tokenB = "client-b-token-0123456789";
    const guarded = await spawnAgent(GATEWAY, consul.address, {
      readyMessage: "gateway ready",
      env: { MESH_GATEWAY_TOKEN: `${tokenA},${tokenB}` },
    });
    try {
      const url = new URL("/agents/finance/mcp", guarded.url).toString();
      const as = (token: string) => ({ authorization: `Bearer ${token}` });
      const created = await rpc(
        url,
        "tools/call",
        { name: "run_payroll", arguments: { month: "2026-03", pace_ms: 200 } },
        undefined,
        as(tokenA),
      );
      const taskId = created.result!["taskId"] as string;
      expect((await rpc(url, "tasks/get", { taskId }, undefined, as(tokenA))).result).toMatchObject({ taskId });
      for (const other of [
        () => rpc(url, "tasks/get", { taskId }, undefined, as(tokenB)),
        () => rpc(url, "tasks/cancel", { taskId }, undefined, as(tokenB)),
        () => rpc(passthrough(), "tasks/get", { taskId }), // the open gateway: another client
        () => rpc(finance[0]!.url, "tasks/get", { taskId }), // a mesh member asking for itself
      ]) {
        expect((await other()).error).toMatchObject({ code: -32602, message: expect.stringMatching(/Unknown task/) });
      }
      // Still running for its owner, who cancels it.
      expect((await rpc(url, "tasks/cancel", { taskId }, undefined, as(tokenA))).result).toMatchObject({ resultType: "complete" });
    } finally {
      await guarded.process.stop(2_000);
    }
  }, 30_000);

  it("SIGKILL of the replica running it: the task is failed with a message naming that instance, answered by the survivor", async () => {
    const taskId = await startPayroll("2026-08", 500);
    await until(passthrough(), taskId, ["working"], 5_000);
    const record = JSON.parse((await consul.client.kvGet(`toolmesh/tasks/finance/${taskId}`))!.value) as { instance: string };
    const victim = finance.find((f) => f.instanceId === record.instance)!;
    victim.process.signal("SIGKILL");
    // The gateway (the task's owner's way in) reaches the survivor.
    const failed = await until(passthrough(), taskId, ["failed", "completed"], 30_000);
    expect(failed["status"]).toBe("failed");
    expect((failed["error"] as { message: string }).message).toMatch(
      new RegExp(`^Instance ${victim.instanceId} stopped while running run_payroll`),
    );
    // No payroll was recorded for the month: the run did not finish.
    expect(await consul.client.kvGet("toolmesh/state/finance/payroll/2026-08")).toBeUndefined();
  }, 60_000);

  it("tasks/get for an unknown task is an invalid-params error; a client without the extension gets -32021", async () => {
    expect((await rpc(passthrough(), "tasks/get", { taskId: "no-such-task" })).error).toMatchObject({ code: -32602 });
    const without = await rpc(passthrough(), "tasks/get", { taskId: "no-such-task" }, {});
    expect(without.error).toMatchObject({ code: -32021, message: expect.stringMatching(/io\.modelcontextprotocol\/tasks/) });
    // Without the extension, run_payroll answers as a plain (long) call: no task handle.
    const sync = await rpc(passthrough(), "tools/call", { name: "run_payroll", arguments: { month: "2026-07", pace_ms: 0 } }, {});
    expect(sync.result).toMatchObject({ resultType: "complete", structuredContent: { employees: 51 } });
  });
});

describe("the CLI", () => {
  it("mesh call --task prints a task id; mesh tasks wait follows it to its result; list shows it; get and cancel answer", async () => {
    const c = ["--consul", consul.address];
    const started = await mesh(["call", "finance.run_payroll", '{"month":"2026-06","pace_ms":100}', "--task", "--json", ...c]);
    expect(started.code, started.stderr).toBe(0);
    const { task } = JSON.parse(started.stdout) as { task: { taskId: string; status: string } };
    expect(task.status).toBe("working");
    const waited = await mesh(["tasks", "wait", "finance", task.taskId, ...c]);
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stderr).toMatch(/working — \d+ of 51 employees paid/); // a line per change when not on a terminal
    expect(waited.stdout).toMatch(new RegExp(`^finance task ${task.taskId}: completed — Payroll 2026-06: 51 employees`));
    expect(waited.stdout).toMatch(/"employees": 51/);
    const listed = JSON.parse((await mesh(["tasks", "list", "finance", "--json", ...c])).stdout) as {
      taskId: string;
      status: string;
      tool: string;
    }[];
    expect(listed).toContainEqual(expect.objectContaining({ taskId: task.taskId, status: "completed", tool: "run_payroll" }));
    const unknown = await mesh(["tasks", "get", "finance", "no-such-task", ...c]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown task "no-such-task"/);

    const slow = JSON.parse(
      (await mesh(["call", "finance.run_payroll", '{"month":"2026-05","pace_ms":1000}', "--task", "--json", ...c])).stdout,
    ) as {
      task: { taskId: string };
    };
    const cancelled = await mesh(["tasks", "cancel", "finance", slow.task.taskId, ...c]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    const end = await mesh(["tasks", "wait", "finance", slow.task.taskId, "--json", ...c]);
    expect(JSON.parse(end.stdout)).toMatchObject({ taskId: slow.task.taskId, status: "cancelled" });
    expect(end.code).toBe(3);
  }, 60_000);
});
