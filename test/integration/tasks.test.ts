// Tasks across the mesh (SEP-2663): a long-running finance tool started through the gateway
// runs as a task whose record lives in Consul KV, so any replica answers for it, a cancel
// reaches the replica running it, and the death of that replica is reported, never hidden.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { mesh, ROOT } from "../helpers/cli.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually, within } from "../helpers/eventually.ts";
import { sseMessages } from "../helpers/rawMcp.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const EVERYTHING = fileURLToPath(new URL("../fixtures/everythingAgent.ts", import.meta.url));
const TASKS = "io.modelcontextprotocol/tasks";

/** The outages here are Consul killed outright: a shortened leader-retry budget (default 20 s) keeps each within its test's time. */
const OUTAGE = { env: { MESH_CONSUL_RETRY_MS: "3000" } };
let consul: TestConsul;
let gateway: TestAgent;
const finance: TestAgent[] = [];
let hr: TestAgent;

beforeAll(async () => {
  consul = await startTestConsul();
  [hr] = await Promise.all([spawnAgent("hr", consul.address)]);
  finance.push(...(await Promise.all([spawnAgent("finance", consul.address, OUTAGE), spawnAgent("finance", consul.address, OUTAGE)])));
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
  /** Headers to add, or to leave out (undefined), as a client that sends other headers does. */
  headers: Record<string, string | undefined> = {},
): Promise<{ result?: Record<string, unknown>; error?: { code: number; message: string } }> {
  const name = method === "tools/call" ? (params["name"] as string) : (params["taskId"] as string | undefined);
  const sent = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": method,
    ...(name ? { "mcp-name": name } : {}),
    ...headers,
  };
  const res = await fetch(url, {
    method: "POST",
    headers: Object.fromEntries(Object.entries(sent).filter((e): e is [string, string] => e[1] !== undefined)),
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          ...(params["_meta"] as Record<string, unknown> | undefined),
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientCapabilities": capabilities,
          "io.modelcontextprotocol/clientInfo": { name: "tasks-test", version: "1" },
        },
      },
    }),
  });
  const text = await res.text();
  if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
    const data = sseMessages<Record<string, unknown>>(text);
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

async function until(url: string, taskId: string, statuses: string[], timeoutMs: number, headers: Record<string, string | undefined> = {}) {
  const seen = await eventually(
    async () => {
      const r = await rpc(url, "tasks/get", { taskId }, undefined, headers);
      return statuses.includes(r.result?.["status"] as string) ? r.result : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `task ${taskId} ${statuses.join("/")}` },
  );
  return seen.value!;
}

// pydantic-ai's mcp-tasks client sends Mcp-Name on tools/call but none on tasks/get and
// tasks/cancel. The Tasks extension asks clients for it (the task id, for intermediaries that
// route on it); toolmesh routes on the body, so a task it started is reported and cancelled
// all the same, while a header that disagrees with the body is still refused.
describe("a client that sends no Mcp-Name on tasks/get and tasks/cancel", () => {
  const endpoints = [
    ["finance itself", () => finance[0]!.url, "run_payroll"],
    ["/agents/finance/mcp", passthrough, "run_payroll"],
    ["the gateway's /mcp", () => gateway.url, "finance__run_payroll"],
  ] as const;
  const noName = { "mcp-name": undefined };

  it.each(endpoints.map(([label, url, tool], i) => [label, url, tool, `2025-0${i + 1}`] as const))(
    "at %s: the task it started reaches completed and its result is reported",
    async (_label, url, tool, month) => {
      const created = await rpc(url(), "tools/call", { name: tool, arguments: { month, pace_ms: 0 } });
      expect(created.result).toMatchObject({ resultType: "task" });
      const taskId = created.result!["taskId"] as string;
      const first = await rpc(url(), "tasks/get", { taskId }, undefined, noName);
      expect(first.error).toBeUndefined();
      expect(first.result).toMatchObject({ taskId, resultType: "complete" });
      const done = await until(url(), taskId, ["completed", "failed", "cancelled"], 30_000, noName);
      expect(done).toMatchObject({ taskId, status: "completed", result: { structuredContent: { employees: 51, month } } });
    },
    60_000,
  );

  it.each(endpoints.map(([label, url, tool], i) => [label, url, tool, `2025-0${i + 4}`] as const))(
    "at %s: its cancel cancels the task, and no payroll is recorded",
    async (_label, url, tool, month) => {
      const created = await rpc(url(), "tools/call", { name: tool, arguments: { month, pace_ms: 500 } });
      const taskId = created.result!["taskId"] as string;
      expect((await rpc(url(), "tasks/cancel", { taskId }, undefined, noName)).result).toMatchObject({ resultType: "complete" });
      const ended = await until(url(), taskId, ["cancelled", "completed", "failed"], 15_000, noName);
      expect(ended["status"]).toBe("cancelled");
      expect(await consul.client.kvGet(`toolmesh/state/finance/payroll/${month}`)).toBeUndefined();
    },
    30_000,
  );

  it.each(endpoints)(
    "at %s: an Mcp-Name that names another task is refused (-32020)",
    async (_label, url, tool) => {
      const created = await rpc(url(), "tools/call", { name: tool, arguments: { month: "2025-07", pace_ms: 0 } });
      const taskId = created.result!["taskId"] as string;
      for (const method of ["tasks/get", "tasks/cancel"])
        expect((await rpc(url(), method, { taskId }, undefined, { "mcp-name": `${taskId}x` })).error, method).toMatchObject({
          code: -32020,
          message: expect.stringMatching(/Mcp-Name/),
        });
      await until(url(), taskId, ["completed"], 30_000);
    },
    60_000,
  );

  it.each(endpoints)(
    "at %s: any task id, header-safe or not, is looked up from the body: an unknown one is 'Unknown task'",
    async (_label, url) => {
      for (const raw of ["é", " padded ", "=?base64?eA==?=", "no-such-task"]) {
        const taskId = url() === gateway.url ? `finance~${raw}` : raw;
        expect((await rpc(url(), "tasks/get", { taskId }, undefined, noName)).error, JSON.stringify(taskId)).toMatchObject({
          code: -32602,
          message: expect.stringMatching(/Unknown task/),
        });
      }
    },
  );

  it.each(endpoints)("at %s: a tools/call without Mcp-Name is refused before any task starts (-32020)", async (_label, url, tool) => {
    const refused = await rpc(url(), "tools/call", { name: tool, arguments: { month: "2025-08", pace_ms: 0 } }, undefined, noName);
    expect(refused.error).toMatchObject({ code: -32020, message: expect.stringMatching(/Mcp-Name/) });
    expect(refused.result).toBeUndefined();
  });
});

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
    const started = await mesh(["call", "finance.run_payroll", '{"month":"2026-06","pace_ms":400}', "--task", "--json", ...c]);
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

/** The mesh CLI as a running process whose stderr can be watched while it runs. */
function meshLive(args: string[]): { stderr: () => string; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, ["orchestrator/cli/main.ts", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return {
    stderr: () => stderr,
    done: new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr }))),
  };
}

/** Until every agent of this file is registered and passing in the (restarted) Consul, and the gateway routes to finance. */
async function meshBack(): Promise<void> {
  await eventually(
    async () =>
      (await consul.client.healthService("finance", { passing: true })).value.length === 2 &&
      (await consul.client.healthService("hr", { passing: true })).value.length === 1,
    { timeoutMs: 15_000, intervalMs: 200, what: "hr and both finance replicas passing in the restarted Consul" },
  );
}

/** A payroll task started at a finance replica directly (owned by an anonymous caller, as the CLI is here). */
async function startPayrollAt(agent: TestAgent, month: string, paceMs: number): Promise<string> {
  const created = await rpc(agent.url, "tools/call", { name: "run_payroll", arguments: { month, pace_ms: paceMs } });
  expect(created.result).toMatchObject({ resultType: "task", status: "working" });
  return created.result!["taskId"] as string;
}

/** Nothing a caller is told names Consul's address or a KV path. */
function noInternals(text: string): void {
  expect(text).not.toMatch(/Consul at|https?:\/\/127\.|toolmesh\/(tasks|state|idempotency)\/|\/v1\/kv/);
}

describe("task ids, and a Consul that fails under running tasks", () => {
  // Two live finance replicas (a test above SIGKILLs one).
  beforeAll(async () => {
    for (const [i, f] of finance.entries()) if (!f.process.running) finance[i] = await spawnAgent("finance", consul.address, OUTAGE);
    await meshBack();
  }, 30_000);

  it("a malformed or unknown task id is 'Unknown task' (-32602) at an agent, at the gateway and in the CLI, naming nothing internal", async () => {
    const bogus = ["nope", "../../../v1/agent/self", "a?recurse=true", "x y", "%2e%2e%2f", "..", "é", "0".repeat(190)];
    for (const taskId of bogus) {
      for (const [url, id] of [
        [finance[0]!.url, taskId],
        [passthrough(), taskId],
        [gateway.url, `finance~${taskId}`],
      ] as const) {
        for (const method of ["tasks/get", "tasks/cancel"]) {
          const r = await rpc(url, method, { taskId: id });
          expect(r.error, `${method} ${id} at ${url}`).toMatchObject({ code: -32602, message: expect.stringMatching(/Unknown task/) });
          noInternals(r.error!.message);
        }
      }
    }
    const c = ["--consul", consul.address];
    for (const cmd of ["get", "wait", "cancel"]) {
      const r = await mesh(["tasks", cmd, "finance", "..", ...c]);
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/^mesh: Unknown task/);
      noInternals(r.stderr);
    }
  }, 60_000);

  it("with the agent's Consul down, tasks/get says so (-32017, retryable), never 'Unknown task', and names nothing internal", async () => {
    const taskId = await startPayrollAt(finance[0]!, "2026-01", 300);
    await until(finance[0]!.url, taskId, ["working"], 5_000);
    consul.agent.kill("SIGKILL");
    await consul.agent.exited;
    try {
      for (const agent of finance) {
        const r = await rpc(agent.url, "tasks/get", { taskId });
        expect(r.error).toMatchObject({ code: -32017, data: { code: "CONSUL_UNREACHABLE", retryable: true } });
        expect(r.error!.message).not.toMatch(/Unknown task/);
        noInternals(r.error!.message);
      }
    } finally {
      await consul.restart();
    }
    await meshBack();
  }, 60_000);

  it("after Consul restarts without its data, a running task is found again and finishes (its payroll recorded); each agent says once that Consul lost its data", async () => {
    const lostWarnings = (a: TestAgent) => a.logs().filter((l) => /^Consul lost its data/.test(String(l["msg"]))).length;
    const before = finance.map(lostWarnings);
    const taskId = await startPayrollAt(finance[0]!, "2025-12", 150);
    await until(finance[1]!.url, taskId, ["working"], 5_000);
    await consul.restart(); // a fresh -dev agent: every key and registration is gone
    // The replica running it writes its record back: any replica answers for it again, and the CLI too.
    for (const agent of finance) await until(agent.url, taskId, ["working", "completed"], 10_000);
    await meshBack();
    const got = await eventually(
      async () => {
        const r = await mesh(["tasks", "get", "finance", taskId, "--json", "--consul", consul.address]);
        return r.code === 0 ? (JSON.parse(r.stdout) as { status: string }) : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 250, what: "mesh tasks get finding the task again" },
    );
    expect(["working", "completed"]).toContain(got.value.status);
    const done = await until(finance[1]!.url, taskId, ["completed", "failed"], 30_000);
    expect(done).toMatchObject({ status: "completed", result: { structuredContent: { employees: 51, month: "2025-12" } } });
    expect(await consul.client.kvGet("toolmesh/state/finance/payroll/2025-12")).toBeDefined();
    // No silent loss: one warning per replica, saying what was lost and why.
    await eventually(() => finance.every((a, i) => lostWarnings(a) === before[i]! + 1), {
      timeoutMs: 10_000,
      what: "a 'Consul lost its data' warning from each finance replica",
    });
    const warning = finance[0]!.logs().findLast((l) => /^Consul lost its data/.test(String(l["msg"])))!;
    expect(warning).toMatchObject({ level: 40 });
    expect(String(warning["msg"])).toMatch(/bookings, expenses, payrolls, task records.*idempotency records.*-dev/);
  }, 90_000);

  it("a task that ends while its Consul is down has its end recorded once Consul is back, said without internals", async () => {
    const runner = finance[0]!;
    const taskId = await startPayrollAt(runner, "2025-10", 40); // about 2 s; it records the payroll in Consul at the end
    await until(runner.url, taskId, ["working"], 5_000);
    consul.agent.kill("SIGKILL");
    await consul.agent.exited;
    try {
      await eventually(
        () => runner.logs().some((l) => l["taskId"] === taskId && /^the task ended; recording its end/.test(String(l["msg"]))),
        { timeoutMs: 20_000, what: "the task ending while Consul is down" },
      );
    } finally {
      await consul.restart(); // empty: the record is written back from the replica's copy
    }
    const ended = await until(finance[1]!.url, taskId, ["completed", "failed"], 15_000);
    // It could not record its payroll: failed, and says why without Consul's address or keys.
    expect(ended).toMatchObject({
      status: "failed",
      error: {
        code: -32017,
        message: expect.stringMatching(/^The task could not finish: this agent's Consul failed under it \(CONSUL_UNREACHABLE\)/),
      },
    });
    noInternals(JSON.stringify(ended));
    await meshBack();
  }, 60_000);

  it("mesh tasks wait rides out a Consul outage (saying it retries on stderr) and ends with the task's result", async () => {
    // Long enough (51 employees × 400 ms) to still be working once a CLI has started on a busy machine.
    const taskId = await startPayrollAt(finance[1]!, "2025-11", 400);
    const waiting = meshLive(["tasks", "wait", "finance", taskId, "--consul", consul.address]);
    await eventually(() => /^working/m.test(waiting.stderr()), { timeoutMs: 10_000, what: "the wait following the task" });
    consul.agent.kill("SIGKILL");
    await consul.agent.exited;
    try {
      await eventually(() => /retrying until --timeout/.test(waiting.stderr()), {
        timeoutMs: 15_000,
        what: `mesh tasks wait saying it retries; stderr: ${waiting.stderr()}`,
      });
    } finally {
      await consul.restart();
    }
    const r = await within(60_000, "mesh tasks wait to end", waiting.done);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^finance task ${taskId}: completed — Payroll 2025-11: 51 employees`));
    expect(r.stderr).toMatch(/^mesh: .*; retrying until --timeout$/m);
    await meshBack();
  }, 90_000);
});

describe("a keyed --task call, repeated", () => {
  let jobs: TestAgent;
  beforeAll(async () => {
    jobs = await spawnAgent(EVERYTHING, consul.address, { env: { AGENT_NAME: "jobs" } });
    await eventually(async () => (await consul.client.healthService("jobs", { passing: true })).value.length === 1, {
      timeoutMs: 10_000,
      what: "jobs passing",
    });
  }, 30_000);
  afterAll(() => jobs.process.stop(2_000));

  it("after its task failed answers the failure (exit 3, with its error), not the stale 'working' handle", async () => {
    const c = ["--consul", consul.address];
    const call = ["call", "jobs.protocol_error_job", "{}", "--task", "--idempotency-key", `job-${Date.now()}`, ...c];
    const first = await mesh([...call, "--json"]);
    expect(first.code, first.stderr).toBe(0);
    const { task } = JSON.parse(first.stdout) as { task: { taskId: string; status: string } };
    expect(task.status).toBe("working");
    const ended = await mesh(["tasks", "wait", "jobs", task.taskId, "--json", ...c]);
    expect(JSON.parse(ended.stdout)).toMatchObject({ taskId: task.taskId, status: "failed" });
    // The same call again, seconds later: the same task, as it is now.
    const again = await mesh([...call, "--json"]);
    expect(again.code, again.stderr).toBe(3);
    expect(JSON.parse(again.stdout)).toMatchObject({
      task: { taskId: task.taskId, status: "failed", error: { message: expect.stringMatching(/^The job crashed/) } },
    });
    const text = await mesh(call);
    expect(text.code).toBe(3);
    expect(text.stdout).toMatch(
      new RegExp(`^jobs\\.protocol_error_job ran as task ${task.taskId} with this idempotency key; it is failed: The job crashed`),
    );
  }, 60_000);

  it("at the agent and through the gateway, a repeat of a keyed task call answers the task as it is now", async () => {
    for (const url of [jobs.url, new URL("/agents/jobs/mcp", gateway.url).toString()]) {
      // The gateway serves /agents/jobs/mcp once its catalog has a healthy jobs instance. Earlier tests
      // restart Consul empty: the gateway's blocking watch may wait out its 30 s before it sees the new
      // Consul's lower index (a known limit, in docs/limits.md).
      // An answer is not enough: the passthrough lists no tools while its catalog has no healthy jobs.
      const listed = async () => ((await rpc(url, "tools/list", {})).result?.["tools"] as { name: string }[] | undefined) ?? [];
      await eventually(async () => (await listed()).some((t) => t.name === "protocol_error_job"), {
        timeoutMs: 45_000,
        what: `${url} offering protocol_error_job`,
      });
      const call = {
        name: "protocol_error_job",
        arguments: {},
        _meta: { "io.toolmesh/idempotency-key": `rpc-${Date.now()}-${url.length}` },
      };
      const first = await rpc(url, "tools/call", call);
      expect(first.result, JSON.stringify(first)).toMatchObject({ resultType: "task", status: "working" });
      const taskId = first.result!["taskId"] as string;
      await until(url, taskId, ["failed"], 10_000);
      const again = await rpc(url, "tools/call", call);
      expect(again.result, url).toMatchObject({
        resultType: "task",
        taskId,
        status: "failed",
        error: { message: expect.stringMatching(/^The job crashed/) },
      });
    }
  }, 120_000);
});

/** Tasks a replica runs now, from its /metrics (toolmesh_tasks_running). */
async function tasksRunningAt(agent: TestAgent): Promise<number> {
  const text = await (await fetch(new URL("/metrics", agent.url))).text();
  return Number(/^toolmesh_tasks_running(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? Number.NaN);
}

describe("a replica paused while it runs a task (SIGSTOP, then SIGCONT)", () => {
  beforeAll(async () => {
    for (const [i, f] of finance.entries()) if (!f.process.running) finance[i] = await spawnAgent("finance", consul.address, OUTAGE);
    await meshBack();
  }, 30_000);

  it("is reported failed by the other replica, and once it resumes it records nothing: the failed task stays without effect", async () => {
    const [victim, survivor] = [finance[0]!, finance[1]!];
    const month = "2026-11";
    // Slow enough that the handler is still paying employees when the pause ends.
    const taskId = await startPayrollAt(victim, month, 400);
    await until(survivor.url, taskId, ["working"], 5_000);
    victim.process.signal("SIGSTOP");
    let resumed = false;
    try {
      // The survivor answers for it: failed once the paused replica's heartbeat is TASK_ORPHAN_AFTER_MS old.
      const failed = await until(survivor.url, taskId, ["failed", "completed"], 60_000);
      expect(failed["status"]).toBe("failed");
      expect((failed["error"] as { message: string }).message).toMatch(
        new RegExp(`^Instance ${victim.instanceId} stopped while running run_payroll .*changed nothing`),
      );
      victim.process.signal("SIGCONT");
      resumed = true;
      // The resumed replica learns its task ended elsewhere and stops it (or its write is refused).
      await eventually(async () => (await tasksRunningAt(victim)) === 0, {
        timeoutMs: 60_000,
        what: "the resumed replica running no task",
      });
      expect(await consul.client.kvGet(`toolmesh/state/finance/payroll/${month}`)).toBeUndefined();
      const record = JSON.parse((await consul.client.kvGet(`toolmesh/tasks/finance/${taskId}`))!.value) as Record<string, unknown>;
      expect(record).toMatchObject({ status: "failed", instance: victim.instanceId });
      expect(record["applied"]).toBeUndefined();
      expect((await rpc(victim.url, "tasks/get", { taskId })).result).toMatchObject({ status: "failed" });
    } finally {
      if (!resumed) victim.process.signal("SIGCONT");
    }
  }, 180_000);
});
