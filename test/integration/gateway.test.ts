import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type CallToolResult,
} from "@modelcontextprotocol/sdk/types.js";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultText } from "../../src/protocol/results.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const INSPECTOR = fileURLToPath(
  new URL("../../node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js", import.meta.url),
);

let consul: TestConsul;
let gateway: TestAgent;
let client: Client;
const agents: Record<string, TestAgent> = {};
let listChanged = 0;
let resourcesChanged = 0;

beforeAll(async () => {
  consul = await startTestConsul();
  const [hr, finance, probe] = await Promise.all([
    spawnAgent("hr", consul.address),
    spawnAgent("finance", consul.address),
    spawnAgent(PROBE, consul.address, { env: { PROBE_NAME: "probe" } }),
  ]);
  Object.assign(agents, { hr, finance, probe });
  await eventually(async () => (await consul.client.healthService("probe", { passing: true })).value.length === 1, {
    timeoutMs: 3_000,
    what: "probe passing",
  });
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
  client = await connectHttp(gateway.url);
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => void listChanged++);
  client.setNotificationHandler(ResourceListChangedNotificationSchema, () => void resourcesChanged++);
});
afterAll(async () => {
  await client.close();
  await gateway.process.stop(2_000);
  await Promise.all(Object.values(agents).map((a) => a.process.stop(2_000)));
  await consul.stop();
});

async function names(): Promise<string[]> {
  return (await client.listTools()).tools.map((t) => t.name).sort();
}

describe("one MCP server for the whole mesh", () => {
  it("offers every healthy agent's tools as agent__tool: valid MCP names, the same on every listing", async () => {
    const first = await names();
    expect(first).toEqual(expect.arrayContaining(["hr__find_employee", "hr__request_leave", "finance__compute_net_pay", "probe__sleep"]));
    for (const n of first) expect(n).toMatch(/^[A-Za-z0-9_-]{1,128}$/);
    expect(await names()).toEqual(first);
    const tool = (await client.listTools()).tools.find((t) => t.name === "hr__request_leave")!;
    expect(tool.annotations).toMatchObject({ readOnlyHint: false, idempotentHint: false });
    expect(tool.inputSchema.required).toEqual(expect.arrayContaining(["employee_id", "leave_type"]));
  });

  it("forwards calls, including agent-to-agent ones, and continues the client's trace with the gateway in the chain", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const r = (await client.callTool({
      name: "finance__compute_net_pay",
      arguments: { employee_id: "E1002" },
      _meta: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    })) as CallToolResult;
    expect(r.structuredContent).toMatchObject({ employeeId: "E1002", source: { agent: "hr" } });
    await eventually(
      () => agents["finance"]!.logs().some((l) => l["msg"] === "tool call" && l["traceId"] === traceId && l["caller"] === "gateway"),
      { timeoutMs: 2_000, what: "finance's log line" },
    );
    await eventually(
      () => agents["hr"]!.logs().some((l) => l["msg"] === "tool call" && l["traceId"] === traceId && l["caller"] === "finance"),
      { timeoutMs: 2_000, what: "hr's log line" },
    );
  });

  it("answers an unknown tool with a clear error and keeps the session", async () => {
    await expect(client.callTool({ name: "hr__nope", arguments: {} })).rejects.toThrow(
      /Unknown tool "hr__nope": the gateway.s tools are named <agent>__<tool>/,
    );
    expect((await names()).length).toBeGreaterThan(0);
  });

  it("mesh gateway --stdio serves the mesh to a client that spawns it (as Claude Desktop does)", async () => {
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
    const { StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js");
    const stdio = new Client({ name: "desktop", version: "1" });
    await stdio.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [fileURLToPath(new URL("../../orchestrator/cli/main.ts", import.meta.url)), "gateway", "--stdio", "--include", "hr"],
        env: { ...(process.env as Record<string, string>), CONSUL_HTTP_ADDR: consul.address },
        stderr: "ignore",
      }),
    );
    const tools = (await stdio.listTools()).tools.map((t) => t.name);
    expect(tools.length).toBeGreaterThan(0);
    expect(tools.every((n) => n.startsWith("hr__"))).toBe(true);
    const r = (await stdio.callTool({ name: "hr__get_employee", arguments: { employee_id: "E1002" } })) as CallToolResult;
    expect(r.structuredContent).toMatchObject({ employee: { name: "Bob Okafor" } });
    await stdio.close();
  });

  it("the MCP Inspector CLI lists and calls mesh tools through the gateway", async () => {
    const run = promisify(execFile);
    const list = JSON.parse(
      (await run(process.execPath, [INSPECTOR, "--cli", gateway.url, "--transport", "http", "--method", "tools/list"], { timeout: 30_000 }))
        .stdout,
    ) as { tools: { name: string }[] };
    expect(list.tools.map((t) => t.name)).toContain("hr__get_employee");
    const call = JSON.parse(
      (
        await run(
          process.execPath,
          [
            INSPECTOR,
            "--cli",
            gateway.url,
            "--transport",
            "http",
            "--method",
            "tools/call",
            "--tool-name",
            "hr__get_employee",
            "--tool-arg",
            "employee_id=E1003",
          ],
          { timeout: 30_000 },
        )
      ).stdout,
    ) as { structuredContent: { employee: { id: string } } };
    expect(call.structuredContent.employee.id).toBe("E1003");
  });
});

describe("relay", () => {
  it("a client's cancellation reaches the agent: its handler sees the abort within 200 ms", async () => {
    const controller = new AbortController();
    const call = client.callTool({ name: "probe__sleep", arguments: { ms: 10_000 } }, undefined, { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 300));
    const abortedAt = Date.now();
    controller.abort();
    await expect(call).rejects.toThrow();
    const line = await eventually(() => agents["probe"]!.logs().find((l) => l["msg"] === "sleep aborted"), {
      timeoutMs: 1_000,
      what: "the agent's abort",
    });
    expect((line.value["time"] as number) - abortedAt).toBeLessThan(200);
  });

  it("delivers all 10 progress notifications of a 5 s call, in order, without cutting it off", async () => {
    const seen: number[] = [];
    const r = (await client.callTool({ name: "probe__progress", arguments: { count: 10, interval_ms: 500 } }, undefined, {
      onprogress: (p) => void seen.push(p.progress),
      timeout: 2_000, // the client's own idle timeout: progress keeps the call alive
      resetTimeoutOnProgress: true,
    })) as CallToolResult;
    expect(r.structuredContent).toEqual({ sent: 10 });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  }, 15_000);
});

it("with an idle timeout (as the gateway forwards), progress keeps a long call alive even when the client asked for none", async () => {
  const { MeshClient } = await import("../../src/client/meshClient.ts");
  const idle = new MeshClient({ consul: consul.client, callerName: "test", catalogMode: "all" });
  await idle.start();
  // 6 progress steps 300 ms apart: 1.8 s of work against a 1 s idle timeout.
  const { result } = await idle.call("probe", "progress", { count: 6, interval_ms: 300 }, { idleTimeoutMs: 1_000, timeoutMs: 10_000 });
  expect(result.structuredContent).toEqual({ sent: 6 });
  await idle.close();
});

describe("server-to-client requests", () => {
  async function answeringClient(url: string) {
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
    const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
    const { CreateMessageRequestSchema, ElicitRequestSchema, LoggingMessageNotificationSchema } =
      await import("@modelcontextprotocol/sdk/types.js");
    const c = new Client({ name: "answering", version: "1" }, { capabilities: { sampling: {}, elicitation: {} } });
    const logs: unknown[] = [];
    c.setRequestHandler(CreateMessageRequestSchema, (req) => {
      const content = req.params.messages[0]!.content;
      const first = Array.isArray(content) ? content[0] : content;
      return {
        model: "test-model",
        role: "assistant",
        content: { type: "text", text: `sampled: ${first?.type === "text" ? first.text : "?"}` },
      };
    });
    c.setRequestHandler(ElicitRequestSchema, (req) => ({ action: "accept", content: { answer: `yes to ${req.params.message}` } }));
    c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));
    await c.connect(new StreamableHTTPClientTransport(new URL(url)));
    return { c, logs };
  }

  it.each([
    ["the gateway", "", "probe__"],
    ["the passthrough endpoint", "/agents/probe/mcp", ""],
  ])("sampling and elicitation round-trip through %s, answered by the SDK client", async (_label, path, prefix) => {
    const { c, logs } = await answeringClient(path ? new URL(path, gateway.url).toString() : gateway.url);
    const sampled = (await c.callTool({ name: `${prefix}sample`, arguments: { prompt: "hello mesh" } })) as CallToolResult;
    expect(sampled.structuredContent).toMatchObject({ model: "test-model", text: "sampled: hello mesh" });
    const elicited = (await c.callTool({ name: `${prefix}ask_user`, arguments: { message: "proceed?" } })) as CallToolResult;
    expect(elicited.structuredContent).toMatchObject({ action: "accept", content: { answer: "yes to proceed?" } });
    await eventually(() => logs.includes("sampling for hello mesh"), { timeoutMs: 1_000, what: "the agent's log message at the client" });
    await c.close();
  });

  it("the client's log level reaches the agent: below it nothing is sent, at it the messages come", async () => {
    const { c, logs } = await answeringClient(new URL("/agents/probe/mcp", gateway.url).toString());
    await c.setLoggingLevel("warning");
    await c.callTool({ name: "sample", arguments: { prompt: "quiet" } });
    await c.setLoggingLevel("info");
    await c.callTool({ name: "sample", arguments: { prompt: "loud" } });
    await eventually(() => logs.includes("sampling for loud"), { timeoutMs: 1_000, what: "the info message after level info" });
    expect(logs).not.toContain("sampling for quiet");
    await c.close();
  });
});

describe("resources and prompts", () => {
  it("are aggregated across agents: resources keep their URIs and are read from their agent, prompts are named agent__prompt", async () => {
    const { resources } = await client.listResources();
    const info = resources.find((r) => r.uri === "probe://probe/info")!;
    expect(info._meta).toMatchObject({ "io.toolmesh/agent": "probe" });
    const read = await client.readResource({ uri: "probe://probe/info" });
    expect(read.contents[0]).toMatchObject({ text: expect.stringMatching(/^I am probe \(pid \d+\)\.$/) });
    const templated = await client.readResource({ uri: "probe://probe/notes/42" });
    expect(templated.contents[0]).toMatchObject({ text: "Note 42 of probe." });
    await expect(client.readResource({ uri: "probe://nobody/x" })).rejects.toThrow(
      /Resource not found: no agent of the mesh lists "probe:\/\/nobody\/x"/,
    );

    const { prompts } = await client.listPrompts();
    expect(prompts.map((p) => p.name)).toContain("probe__greet");
    const prompt = await client.getPrompt({ name: "probe__greet", arguments: { who: "Ada" } });
    expect(prompt.messages[0]!.content).toMatchObject({ type: "text", text: "Hello Ada, from probe." });
  });

  it.each([
    ["the gateway", ""],
    ["the passthrough endpoint", "/agents/probe/mcp"],
  ])("a resource subscription through %s gets the agent's update notifications", async (_label, path) => {
    const c = await connectHttp(path ? new URL(path, gateway.url).toString() : gateway.url);
    const updates: string[] = [];
    c.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
    await c.subscribeResource({ uri: "probe://probe/info" });
    await eventually(() => updates.includes("probe://probe/info"), { timeoutMs: 1_000, what: "notifications/resources/updated" });
    await c.unsubscribeResource({ uri: "probe://probe/info" });
    await expect(c.subscribeResource({ uri: "probe://nobody/x" })).rejects.toThrow(/Resource not found/);
    await c.close();
  });

  it("completion requests reach the agent that owns the prompt", async () => {
    const c = await connectHttp(new URL("/agents/probe/mcp", gateway.url).toString());
    // The probe declares no completions: the answer is an empty list, not an error.
    const r = await c.complete({ ref: { type: "ref/prompt", name: "greet" }, argument: { name: "who", value: "A" } });
    expect(r.completion.values).toEqual([]);
    await c.close();
  });

  it("the passthrough presents the agent's own prompt names", async () => {
    const c = await connectHttp(new URL("/agents/probe/mcp", gateway.url).toString());
    expect((await c.listPrompts()).prompts.map((p) => p.name)).toEqual(["greet"]);
    expect((await c.getPrompt({ name: "greet", arguments: { who: "Bo" } })).messages[0]!.content).toMatchObject({
      text: "Hello Bo, from probe.",
    });
    await c.close();
  });
});

describe("the tools/call fast path", () => {
  async function rawSession(url: string, capabilities: Record<string, unknown> = {}) {
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    const init = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities, clientInfo: { name: "raw", version: "1" } },
      }),
    });
    await init.text();
    const session = { ...headers, "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-06-18" };
    await (
      await fetch(url, { method: "POST", headers: session, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })
    ).text();
    return (id: number, params: Record<string, unknown>) =>
      fetch(url, { method: "POST", headers: session, body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params }) });
  }

  it("a call that asks for no progress from a session that relays nothing is answered as one JSON response; others stream as SSE", async () => {
    const url = new URL("/agents/hr/mcp", gateway.url).toString();
    const call = await rawSession(url);
    const fast = await call(1, { name: "get_leave_policy", arguments: { leave_type: "sick" } });
    expect(fast.headers.get("content-type")).toBe("application/json");
    expect(await fast.json()).toMatchObject({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text" }] } });
    // Errors keep the full path's answers: an unknown tool is a JSON-RPC error, not a fast result.
    const unknown = await call(2, { name: "nope", arguments: {} });
    expect(await unknown.text()).toMatch(/"error":\{"code":-32602,"message":"[^"]*Unknown tool/);
    // With a progress token the call streams (SSE), progress and all.
    const streamed = await call(3, { name: "get_leave_policy", arguments: { leave_type: "sick" }, _meta: { progressToken: "p" } });
    expect(streamed.headers.get("content-type")).toBe("text/event-stream");
    const sse = await streamed.text();
    expect(sse).toMatch(/"id":3/);
    expect(sse).toMatch(/"result":\{"content"/);
    // A session whose client can answer sampling always takes the full path.
    const relaying = await rawSession(url, { sampling: {} });
    const full = await relaying(4, { name: "get_leave_policy", arguments: { leave_type: "sick" } });
    expect(full.headers.get("content-type")).toBe("text/event-stream");
    await full.text();
  });
});

describe("per-agent passthrough and the dynamic view", () => {
  it("/agents/hr/mcp presents hr exactly as its servers do, load-balanced across its replicas", async () => {
    const second = await spawnAgent("hr", consul.address);
    agents["hr2"] = second;
    const base = new URL(gateway.url);
    const passthrough = await connectHttp(new URL("/agents/hr/mcp", base).toString());
    const direct = await connectHttp(agents["hr"]!.url);
    const strip = (tools: { name: string; inputSchema: unknown; annotations?: unknown }[]) =>
      tools.map((t) => ({ name: t.name, inputSchema: t.inputSchema, annotations: t.annotations }));
    expect(strip((await passthrough.listTools()).tools)).toEqual(strip((await direct.listTools()).tools));
    await direct.close();

    await eventually(async () => (await consul.client.healthService("hr", { passing: true })).value.length === 2, {
      timeoutMs: 3_000,
      what: "two hr replicas",
    });
    await new Promise((r) => setTimeout(r, 200)); // the gateway's catalog follows Consul
    for (let i = 0; i < 6; i++) {
      const r = (await passthrough.callTool({ name: "get_employee", arguments: { employee_id: "E1001" } })) as CallToolResult;
      expect(r.isError).toBeFalsy();
    }
    const served = (a: TestAgent) =>
      a.logs().filter((l) => l["msg"] === "tool call" && l["tool"] === "get_employee" && l["caller"] === "gateway").length;
    expect(served(agents["hr"]!)).toBeGreaterThan(0);
    expect(served(second)).toBeGreaterThan(0);
    await expect(passthrough.callTool({ name: "hr__get_employee", arguments: {} })).rejects.toThrow(
      /Unknown tool "hr__get_employee": hr offers find_employee, /,
    );
    await passthrough.close();

    const missing = await fetch(new URL("/agents/payroll/mcp", base), {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain("/agents/<name>/mcp for each agent with a healthy instance");
  });

  it("--dynamic offers three meta-tools to search, describe and call the mesh's tools", async () => {
    const dynamicGateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready", args: ["--dynamic"] });
    agents["dynamic"] = dynamicGateway;
    const c = await connectHttp(dynamicGateway.url);
    expect((await c.listTools()).tools.map((t) => t.name)).toEqual(["search_tools", "describe_tool", "call_tool"]);
    const found = (await c.callTool({
      name: "search_tools",
      arguments: { query: "leave balance of an employee", limit: 3 },
    })) as CallToolResult;
    expect((found.structuredContent as { results: { name: string }[] }).results[0]!.name).toBe("hr__get_leave_balance");
    const described = (await c.callTool({ name: "describe_tool", arguments: { name: "hr__get_leave_balance" } })) as CallToolResult;
    expect((described.structuredContent as { tool: { inputSchema: { required: string[] } } }).tool.inputSchema.required).toEqual([
      "employee_id",
    ]);
    const called = (await c.callTool({
      name: "call_tool",
      arguments: { name: "hr__get_leave_balance", arguments: { employee_id: "E1002" } },
    })) as CallToolResult;
    expect(called.structuredContent).toMatchObject({ employeeId: "E1002", year: 2026 });
    const unknown = (await c.callTool({ name: "call_tool", arguments: { name: "hr__fire_everyone" } })) as CallToolResult;
    expect(unknown.isError).toBe(true);
    expect(resultText(unknown)).toContain('Unknown tool "hr__fire_everyone": search_tools finds the tools available now');
    await c.close();
  });
});

describe("a live catalog", () => {
  it("a new agent: the client gets list_changed and can call its tools within 2 s", async () => {
    const before = listChanged;
    const resourcesBefore = resourcesChanged;
    const started = performance.now();
    agents["knowledge"] = await spawnAgent("knowledge", consul.address);
    await eventually(() => listChanged > before, { timeoutMs: 2_000 - (performance.now() - started), what: "tools/list_changed" });
    // A new agent may bring resources and prompts: clients are told to list them again.
    expect(resourcesChanged).toBeGreaterThan(resourcesBefore);
    const r = (await client.callTool({ name: "knowledge__ask", arguments: { question: "What is the referral bonus?" } })) as CallToolResult;
    expect(resultText(r)).toContain("2,000 USD");
    expect(performance.now() - started).toBeLessThan(2_000 + 500); // the call itself, after the notification
  });

  it("every replica of an agent down: its tools leave the list, and other agents keep working in the same session", async () => {
    const before = listChanged;
    agents["hr"]!.process.signal("SIGKILL");
    agents["hr2"]?.process.signal("SIGKILL");
    await eventually(() => listChanged > before, { timeoutMs: 5_000, what: "tools/list_changed after hr died" });
    const now = await names();
    expect(now.filter((n) => n.startsWith("hr__"))).toEqual([]);
    const r = (await client.callTool({ name: "finance__get_budget", arguments: { department: "Sales" } })) as CallToolResult;
    expect(r.isError).toBeFalsy();
    // finance's own onward call to hr fails cleanly, as a tool error, not a broken session.
    const netPay = (await client.callTool({ name: "finance__compute_net_pay", arguments: { employee_id: "E1002" } })) as CallToolResult;
    expect(netPay.isError).toBe(true);
    expect(resultText(netPay)).toMatch(/No healthy instance of agent "hr"/);
  });
});
