import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Client, StreamableHTTPClientTransport, type CallToolResult } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import type { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resultText } from "../../src/protocol/results.ts";
import { connectHttp, connectV1, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { legacySessionHeaders, sseMessages } from "../helpers/rawMcp.ts";

const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const INSPECTOR = fileURLToPath(
  new URL("../../node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js", import.meta.url),
);

let consul: TestConsul;
let gateway: TestAgent;
/** A 2026-07-28 client (no session) with a subscriptions/listen stream open. */
let client: Client;
/** A 2025-11-25 client on the SDK's v1 line, with a session. */
let legacy: V1Client;
const agents: Record<string, TestAgent> = {};
let listChanged = 0;
let resourcesChanged = 0;
let legacyListChanged = 0;

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
  client.setNotificationHandler("notifications/tools/list_changed", () => void listChanged++);
  client.setNotificationHandler("notifications/resources/list_changed", () => void resourcesChanged++);
  await client.listen({ toolsListChanged: true, resourcesListChanged: true });
  legacy = await connectV1(gateway.url);
  legacy.setNotificationHandler(ToolListChangedNotificationSchema, () => void legacyListChanged++);
});
afterAll(async () => {
  await client.close();
  await legacy.close();
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
    const stdio = new Client({ name: "desktop", version: "1" }, { versionNegotiation: { mode: "auto" } });
    await stdio.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [fileURLToPath(new URL("../../orchestrator/cli/main.ts", import.meta.url)), "gateway", "--stdio", "--include", "hr"],
        env: { ...(process.env as Record<string, string>), CONSUL_HTTP_ADDR: consul.address },
        stderr: "ignore",
      }),
    );
    expect(stdio.getProtocolEra()).toBe("modern");
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
  it.each([
    ["a 2026-07-28 client through the gateway", "modern", () => gateway.url, "probe__sleep"],
    ["a 2025-11-25 client through the gateway", "legacy", () => gateway.url, "probe__sleep"],
    ["a 2025-11-25 client of the agent itself", "legacy", () => agents["probe"]!.url, "sleep"],
  ] as const)("%s: its cancellation reaches the handler, which stops before its end", async (_label, era, url, tool) => {
    const c = era === "modern" && url() === gateway.url ? client : await connectHttp(url(), { era });
    const count = (msg: string) => agents["probe"]!.logs().filter((l) => l["msg"] === msg).length;
    const before = count("sleep aborted");
    const startedBefore = count("sleep started");
    const controller = new AbortController();
    const call = c.callTool({ name: tool, arguments: { ms: 10_000 } }, { signal: controller.signal });
    await eventually(() => count("sleep started") > startedBefore, { timeoutMs: 5_000, what: "the call to run at the agent" });
    const abortedAt = Date.now();
    controller.abort();
    await expect(call).rejects.toThrow();
    const line = await eventually(() => agents["probe"]!.logs().filter((l) => l["msg"] === "sleep aborted")[before], {
      timeoutMs: 1_000,
      what: "the agent's abort",
    });
    // Caused by this cancellation (after it, same clock), and the handler did not run its 10 s.
    expect(line.value["time"] as number).toBeGreaterThanOrEqual(abortedAt);
    expect(line.value["afterMs"] as number).toBeLessThan(10_000);
    if (c !== client) await c.close();
  });

  it.each(["modern", "legacy"] as const)(
    "a plain call (%s) is answered as one JSON response; a call that reports progress streams it",
    async (era) => {
      const url = new URL("/agents/probe/mcp", gateway.url).toString();
      const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream" };
      const meta = (extra: Record<string, unknown> = {}) =>
        era === "modern"
          ? { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, ...extra }
          : extra;
      if (era === "legacy") Object.assign(headers, await legacySessionHeaders(url));
      else Object.assign(headers, { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call" });
      const post = (id: number, name: string, args: Record<string, unknown>, extra?: Record<string, unknown>) =>
        fetch(url, {
          method: "POST",
          headers: era === "modern" ? { ...headers, "mcp-name": name } : headers,
          body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, _meta: meta(extra) } }),
        });
      const plain = await post(1, "context", {});
      expect(plain.headers.get("content-type")).toBe("application/json");
      expect(await plain.json()).toMatchObject({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text" }] } });
      const streamed = await post(2, "progress", { count: 2, interval_ms: 10 }, { progressToken: "p" });
      expect(streamed.headers.get("content-type")).toBe("text/event-stream");
      const sse = await streamed.text();
      expect(sse).toMatch(/"method":"notifications\/progress"/);
      expect(sse).toMatch(/"id":2,"result"|"result":\{.*"id":2/s);
    },
  );

  it("delivers all 10 progress notifications of a 5 s call, in order, without cutting it off", async () => {
    const seen: number[] = [];
    const r = (await client.callTool(
      { name: "probe__progress", arguments: { count: 10, interval_ms: 500 } },
      {
        onprogress: (p) => void seen.push(p.progress),
        timeout: 2_000, // the client's own idle timeout: progress keeps the call alive
        resetTimeoutOnProgress: true,
      },
    )) as CallToolResult;
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
  async function answeringClient(url: string, era: "modern" | "legacy") {
    const c = new Client(
      { name: "answering", version: "1" },
      {
        capabilities: { sampling: {}, elicitation: {} },
        versionNegotiation: { mode: era === "modern" ? { pin: "2026-07-28" } : "legacy" },
      },
    );
    const logs: unknown[] = [];
    c.setRequestHandler("sampling/createMessage", (req) => {
      const content = req.params.messages[0]!.content;
      const first = Array.isArray(content) ? content[0] : content;
      return {
        model: "test-model",
        role: "assistant",
        content: { type: "text", text: `sampled: ${first?.type === "text" ? first.text : "?"}` },
      };
    });
    c.setRequestHandler("elicitation/create", (req) => ({ action: "accept", content: { answer: `yes to ${req.params.message}` } }));
    c.setNotificationHandler("notifications/message", (n) => void logs.push(n.params.data));
    await c.connect(new StreamableHTTPClientTransport(new URL(url)));
    return { c, logs };
  }

  it.each([
    ["the gateway", "2026-07-28", "", "probe__"],
    ["the gateway", "2025-11-25", "", "probe__"],
    ["the passthrough endpoint", "2026-07-28", "/agents/probe/mcp", ""],
    ["the passthrough endpoint", "2025-11-25", "/agents/probe/mcp", ""],
  ] as const)("sampling and elicitation round-trip through %s, answered by the SDK client (%s)", async (_label, revision, path, prefix) => {
    const era = revision === "2026-07-28" ? "modern" : "legacy";
    const { c } = await answeringClient(path ? new URL(path, gateway.url).toString() : gateway.url, era);
    const sampled = (await c.callTool({ name: `${prefix}sample`, arguments: { prompt: "hello mesh" } })) as CallToolResult;
    expect(sampled.structuredContent).toMatchObject({ model: "test-model", text: "sampled: hello mesh" });
    const elicited = (await c.callTool({ name: `${prefix}ask_user`, arguments: { message: "proceed?" } })) as CallToolResult;
    expect(elicited.structuredContent).toMatchObject({ action: "accept", content: { answer: "yes to proceed?" } });
    await c.close();
  });

  it("a 2025-11-25 client's log level reaches the agent: below it nothing is sent, at it the messages come", async () => {
    const { c, logs } = await answeringClient(new URL("/agents/probe/mcp", gateway.url).toString(), "legacy");
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
    ["a 2026-07-28 client", (url: string) => connectHttp(url)],
    ["a 2025-11-25 client (SDK v1)", (url: string) => connectV1(url)],
  ])(
    "%s that declares no capabilities sees hr's own resources at /mcp and /agents/hr/mcp, and reads them through /mcp",
    async (_label, connect) => {
      const vocabulary = "toolmesh://hr/vocabulary";
      for (const url of [gateway.url, new URL("/agents/hr/mcp", gateway.url).toString()]) {
        const c = await connect(url);
        try {
          const { resources } = await c.listResources();
          expect(
            resources.map((r) => r.uri),
            `resources/list at ${url}`,
          ).toContain(vocabulary);
          const read = await c.readResource({ uri: vocabulary });
          const content = read.contents[0] as { uri: string; text?: string };
          expect(content.uri).toBe(vocabulary);
          expect((JSON.parse(content.text ?? "{}") as { entries?: unknown[] }).entries?.length).toBeGreaterThan(0);
        } finally {
          await c.close();
        }
      }
    },
  );

  /** Changes the probe's info resource until `seen()` (an upstream subscription may take a moment to be made). */
  async function touchUntil(seen: () => boolean, what: string) {
    const toucher = await connectHttp(agents["probe"]!.url);
    await eventually(
      async () => {
        if (seen()) return true;
        await toucher.callTool({ name: "touch", arguments: {} });
        return false; // looked at on the next round, after the interval
      },
      { timeoutMs: 2_000, intervalMs: 50, what },
    );
    await toucher.close();
  }

  it.each([
    ["the agent itself", () => agents["probe"]!.url],
    ["the gateway", () => gateway.url],
    ["the passthrough endpoint", () => new URL("/agents/probe/mcp", gateway.url).toString()],
  ])("a 2025-11-25 resource subscription on %s gets the agent's update notifications", async (_label, url) => {
    const c = await connectHttp(url(), { era: "legacy" });
    const updates: string[] = [];
    c.setNotificationHandler("notifications/resources/updated", (n) => void updates.push(n.params.uri));
    await c.subscribeResource({ uri: "probe://probe/info" });
    await touchUntil(() => updates.includes("probe://probe/info"), "notifications/resources/updated");
    await c.unsubscribeResource({ uri: "probe://probe/info" });
    // The whole mesh knows which agent lists a URI; the agent itself and its passthrough take any.
    if (url() === gateway.url) await expect(c.subscribeResource({ uri: "probe://nobody/x" })).rejects.toThrow(/Resource not found/);
    await c.close();
  });

  it.each([
    ["the agent itself", () => agents["probe"]!.url],
    ["the gateway", () => gateway.url],
    ["the passthrough endpoint", () => new URL("/agents/probe/mcp", gateway.url).toString()],
  ])("a 2026-07-28 subscriptions/listen stream on %s gets the agent's resource updates", async (_label, url) => {
    const c = await connectHttp(url());
    const updates: string[] = [];
    c.setNotificationHandler("notifications/resources/updated", (n) => void updates.push(n.params.uri));
    const sub = await c.listen({ resourceSubscriptions: ["probe://probe/info"] });
    expect(sub.honoredFilter.resourceSubscriptions).toEqual(["probe://probe/info"]);
    await touchUntil(() => updates.includes("probe://probe/info"), "notifications/resources/updated");
    await sub.close();
    await c.close();
  });

  it("completion requests reach the agent that owns the prompt", async () => {
    // The probe declares no completions: through the whole mesh the answer is an empty list, not an error.
    const r = await client.complete({ ref: { type: "ref/prompt", name: "probe__greet" }, argument: { name: "who", value: "A" } });
    expect(r.completion.values).toEqual([]);
  });

  it.each(["2026-07-28", "2025-11-25"] as const)(
    "the passthrough is its agent on %s: the same serverInfo, capabilities and instructions, and what it does not serve is -32601",
    async (revision) => {
      const era = revision === "2026-07-28" ? "modern" : "legacy";
      for (const [name, url] of [
        ["hr", agents["hr"]!.url],
        ["probe", agents["probe"]!.url],
      ] as const) {
        const direct = await connectHttp(url, { era });
        const through = await connectHttp(new URL(`/agents/${name}/mcp`, gateway.url).toString(), { era });
        expect(through.getServerVersion()).toEqual(direct.getServerVersion());
        expect(through.getServerCapabilities()).toEqual(direct.getServerCapabilities());
        expect(through.getInstructions()).toEqual(direct.getInstructions());
        // hr has no prompts and no completions, the probe no completions: the same answer on the wire
        // either way (the SDK's client would not even send what the capabilities leave out).
        const unserved = async (target: string) => {
          const codes: unknown[] = [];
          for (const method of ["prompts/list", "completion/complete", "resources/subscribe"]) {
            const params =
              method === "completion/complete"
                ? { ref: { type: "ref/prompt", name: "greet" }, argument: { name: "who", value: "A" } }
                : method === "resources/subscribe"
                  ? { uri: "toolmesh://x" }
                  : {};
            const answer = await message(await rawRequest(target, revision, method, params));
            codes.push((answer["error"] as { code?: number } | undefined)?.code ?? "answered");
          }
          return codes;
        };
        const throughUrl = new URL(`/agents/${name}/mcp`, gateway.url).toString();
        expect(await unserved(throughUrl)).toEqual(await unserved(url));
        await Promise.all([direct.close(), through.close()]);
      }
      expect(await message(await rawRequest(agents["hr"]!.url, revision, "prompts/list", {}))).toMatchObject({ error: { code: -32601 } });
    },
  );

  it("the passthrough presents the agent's own prompt names", async () => {
    const c = await connectHttp(new URL("/agents/probe/mcp", gateway.url).toString());
    expect((await c.listPrompts()).prompts.map((p) => p.name)).toEqual(["greet"]);
    expect((await c.getPrompt({ name: "greet", arguments: { who: "Bo" } })).messages[0]!.content).toMatchObject({
      text: "Hello Bo, from probe.",
    });
    await c.close();
  });
});

/** A bare 2026-07-28 POST, as any HTTP client can send it: no initialize, no session. */
function bareCall(url: string, id: number, name: string, args: Record<string, unknown>) {
  return fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": "tools/call",
      "mcp-name": name,
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: {
        name,
        arguments: args,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientCapabilities": {},
          "io.modelcontextprotocol/clientInfo": { name: "curl", version: "8" },
        },
      },
    }),
  });
}

/** One request as any HTTP client sends it: 2026-07-28 stateless, or in a fresh 2025-11-25 session. */
async function rawRequest(url: string, revision: "2026-07-28" | "2025-11-25", method: string, params: Record<string, unknown>) {
  const modern = revision === "2026-07-28";
  const headers = modern ? { "mcp-protocol-version": revision, "mcp-method": method } : { ...(await legacySessionHeaders(url)) };
  const meta = {
    "io.modelcontextprotocol/protocolVersion": revision,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": { name: "curl", version: "8" },
  };
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: modern ? { ...params, _meta: meta } : params }),
  });
}

/** The JSON-RPC message of an answer, whether sent as JSON or as one SSE event. */
async function message(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  if (res.headers.get("content-type")?.startsWith("application/json")) return JSON.parse(text) as Record<string, unknown>;
  const data = sseMessages(text);
  return data.find((m) => "result" in m || "error" in m)!;
}

describe("one URL, both revisions", () => {
  it.each([
    ["an agent", () => agents["hr"]!.url, "get_leave_policy"],
    ["the gateway's /mcp", () => gateway.url, "hr__get_leave_policy"],
    ["/agents/hr/mcp", () => new URL("/agents/hr/mcp", gateway.url).toString(), "get_leave_policy"],
  ])("a bare 2026-07-28 tools/call POST to %s is answered, with no session", async (_label, url, tool) => {
    const res = await bareCall(url(), 7, tool, { leave_type: "sick" });
    expect(res.status).toBe(200);
    expect(res.headers.get("mcp-session-id")).toBeNull();
    const answer = await message(res);
    expect(answer).toMatchObject({ jsonrpc: "2.0", id: 7, result: { resultType: "complete", content: [{ type: "text" }] } });
    expect((answer["result"] as { structuredContent: unknown }).structuredContent).toMatchObject({ policies: [{ leaveType: "sick" }] });
  });

  it.each([
    ["an agent", () => agents["hr"]!.url, "get_leave_policy"],
    ["the gateway's /mcp", () => gateway.url, "hr__get_leave_policy"],
    ["/agents/hr/mcp", () => new URL("/agents/hr/mcp", gateway.url).toString(), "get_leave_policy"],
  ])("the same URL (%s) still serves a v1 SDK client over 2025-11-25, with a session", async (_label, url, tool) => {
    const v1 = await connectV1(url());
    const r = (await v1.callTool({ name: tool, arguments: { leave_type: "sick" } })) as CallToolResult;
    expect(r.structuredContent).toMatchObject({ policies: [{ leaveType: "sick" }] });
    await v1.close();
  });

  it.each([
    ["the gateway's /mcp", () => gateway.url, "hr__get_leave_policy"],
    ["/agents/hr/mcp", () => new URL("/agents/hr/mcp", gateway.url).toString(), "get_leave_policy"],
  ])("a 2025-11-25 session on %s gets results without the 2026-07-28 resultType", async (_label, url, tool) => {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(await legacySessionHeaders(url())),
    };
    const res = await fetch(url(), {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: { leave_type: "sick" } } }),
    });
    const answer = await message(res);
    expect(answer).toMatchObject({ id: 1, result: { structuredContent: { policies: [{ leaveType: "sick" }] } } });
    expect(answer["result"]).not.toHaveProperty("resultType");
  });

  it("a 2026-07-28 POST whose Mcp-Name header disagrees with its body is refused before it reaches an agent", async () => {
    const res = await fetch(gateway.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "hr__get_employee",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 9,
        method: "tools/call",
        params: {
          name: "hr__request_leave",
          arguments: {},
          _meta: {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": { name: "curl", version: "8" },
          },
        },
      }),
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/Mcp-Name/i);
  });
});

describe("the gateway forwards a call's arguments byte for byte", () => {
  /** A server that records the bodies it receives, registered in Consul as a toolmesh agent that serves 2026-07-28. */
  async function rawAgent(): Promise<{ bodies: string[]; stop: () => void }> {
    const { spawn } = await import("node:child_process");
    const { createInterface } = await import("node:readline");
    const child = spawn(process.execPath, [fileURLToPath(new URL("../fixtures/rawAgent.ts", import.meta.url))], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const bodies: string[] = [];
    const port = await new Promise<number>((resolve) =>
      createInterface({ input: child.stdout }).on("line", (line) => {
        const e = JSON.parse(line) as { event: string; raw?: string; port?: number };
        if (e.event === "ready") resolve(e.port!);
        else bodies.push(e.raw!);
      }),
    );
    await consul.client.registerService({
      id: "raw-1",
      name: "raw",
      address: "127.0.0.1",
      port,
      tags: ["mcp"],
      meta: { toolmesh_version: "test", mcp_protocols: "2026-07-28", mcp_path: "/mcp" },
    });
    return { bodies, stop: () => void child.kill() };
  }

  it.each([
    ["/mcp", "raw__take"],
    ["/agents/raw/mcp", "take"],
  ])("through %s: key order, number formatting and escapes of the arguments arrive as the client wrote them", async (path, tool) => {
    const raw = await rawAgent();
    try {
      const url = new URL(path, gateway.url).toString();
      await eventually(
        async () => {
          const c = await connectHttp(new URL("/agents/raw/mcp", gateway.url).toString()).catch(() => undefined);
          const names = (await c?.listTools().catch(() => undefined))?.tools.map((t) => t.name) ?? [];
          await c?.close();
          return names.includes("take");
        },
        { timeoutMs: 5_000, what: "the gateway to list the raw agent's tool" },
      );
      const args = String.raw`{"zeta":1.50,"alpha":1e2,"s":"caf\u00e9 \"q\"","nested":{"b":[1.0,2],"a":null}}`;
      const body = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${tool}","arguments":${args},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`;
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": "2026-07-28",
          "mcp-method": "tools/call",
          "mcp-name": tool,
        },
        body,
      });
      const answer = await res.text();
      expect(JSON.parse(answer), answer).toMatchObject({ id: 1, result: { content: [{ text: "ok" }] } });
      const call = raw.bodies.find((b) => b.includes('"method":"tools/call"'))!;
      expect(call, call).toContain(`"arguments":${args}`);
      // The name and the context are the gateway's to rewrite: the agent's own name, the gateway in the caller chain.
      expect(call).toContain('"name":"take"');
      expect(call).toContain('"io.toolmesh/caller":["gateway"]');
    } finally {
      await consul.client.deregisterService("raw-1");
      raw.stop();
    }
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
    const served = (a: TestAgent) =>
      a.logs().filter((l) => l["msg"] === "tool call" && l["tool"] === "get_employee" && l["caller"] === "gateway").length;
    // The gateway's catalog follows Consul: calls go on until both replicas served some.
    await eventually(
      async () => {
        const r = (await passthrough.callTool({ name: "get_employee", arguments: { employee_id: "E1001" } })) as CallToolResult;
        expect(r.isError).toBeFalsy();
        return served(agents["hr"]!) > 0 && served(second) > 0;
      },
      { timeoutMs: 3_000, intervalMs: 20, what: "calls through /agents/hr/mcp served by both replicas" },
    );
    await expect(passthrough.callTool({ name: "hr__get_employee", arguments: {} })).rejects.toThrow(
      /Unknown tool "hr__get_employee": hr offers ask, find_employee, /,
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
  it("a new agent: the connected client gets list_changed and can call its tools, without reconnecting", async () => {
    const before = listChanged;
    const legacyBefore = legacyListChanged;
    const resourcesBefore = resourcesChanged;
    agents["knowledge"] = await spawnAgent("knowledge", consul.address);
    await eventually(() => listChanged > before, { timeoutMs: 2_000, what: "tools/list_changed" });
    await eventually(() => legacyListChanged > legacyBefore, { timeoutMs: 1_000, what: "tools/list_changed on the 2025-11-25 session" });
    // A new agent may bring resources and prompts: clients are told to list them again.
    expect(resourcesChanged).toBeGreaterThan(resourcesBefore);
    const r = (await client.callTool({ name: "knowledge__ask", arguments: { question: "What is the referral bonus?" } })) as CallToolResult;
    expect(resultText(r)).toContain("2,000 USD");
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
