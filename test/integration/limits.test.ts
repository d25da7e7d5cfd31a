// Limits that must not be walked around, tried as an attacker would, with raw HTTP: one request
// validator for the fast path and the SDK's path, nesting refused before anything walks it,
// JSON-RPC batches counted against the concurrency limit, the console not framable, and a
// hung replica behind the gateway failed over from (a real SIGSTOP) with the deadline in force named.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineAgent } from "../../src/agent/definition.ts";
import { agentServing } from "../../src/agent/server.ts";
import { defineTool } from "../../src/agent/tools.ts";
import { McpEndpoint } from "../../src/mcp/endpoint.ts";
import { DEFAULT_MAX_BODY_BYTES, serveHttp, type HttpServer } from "../../src/http/server.ts";
import { silentLogger } from "../../src/logger.ts";
import { OVERLOADED_ERROR_CODE } from "../../src/protocol/codes.ts";
import { MAX_BODY_DEPTH } from "../../src/protocol/limits.ts";
import { connectHttp, spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";
import { sseMessages } from "../helpers/rawMcp.ts";

const SLOW = fileURLToPath(new URL("../fixtures/slowAgent.ts", import.meta.url));
const PROBE = fileURLToPath(new URL("../fixtures/probeAgent.ts", import.meta.url));
const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));

type Rpc = { jsonrpc?: string; id?: unknown; result?: Record<string, unknown>; error?: { code: number; message: string; data?: unknown } };

const ENVELOPE = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientInfo": { name: "limits-test", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
};
const BOTH = "application/json, text/event-stream";
const MODERN_HEADERS = {
  "content-type": "application/json",
  accept: BOTH,
  "mcp-protocol-version": "2026-07-28",
  "mcp-method": "tools/call",
};

/** A 2026-07-28 tools/call body, its envelope naming `version`. */
function modernCall(name: string, args: Record<string, unknown>, version = "2026-07-28", id: unknown = 7): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name, arguments: args, _meta: { ...ENVELOPE, "io.modelcontextprotocol/protocolVersion": version } },
  });
}

/** Posts raw text; reads the answer as JSON or SSE (the JSON-RPC messages it carries). */
async function post(
  url: string,
  headers: Record<string, string | undefined>,
  body: string,
): Promise<{ status: number; messages: Rpc[]; headers: Headers }> {
  const sent = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined)) as Record<string, string>;
  const res = await fetch(url, { method: "POST", headers: sent, body });
  const text = await res.text();
  let messages: Rpc[] = [];
  if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
    messages = sseMessages<Rpc>(text);
  } else if (text) {
    const parsed = JSON.parse(text) as Rpc | Rpc[];
    messages = Array.isArray(parsed) ? parsed : [parsed];
  }
  return { status: res.status, messages, headers: res.headers };
}

/** Opens a 2025-era session at `revision`; its id. */
async function openSession(url: string, revision: string): Promise<string> {
  const init = {
    jsonrpc: "2.0",
    id: 0,
    method: "initialize",
    params: { protocolVersion: revision, capabilities: {}, clientInfo: { name: "limits-test", version: "1" } },
  };
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: BOTH },
    body: JSON.stringify(init),
  });
  const sid = res.headers.get("mcp-session-id");
  await res.text();
  expect(res.status).toBe(200);
  const headers = { "content-type": "application/json", accept: BOTH, "mcp-session-id": sid!, "mcp-protocol-version": revision };
  await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) }).then((r) =>
    r.text(),
  );
  return sid!;
}

const legacyCall = (id: number, name: string, args: Record<string, unknown>) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args },
});

describe("in process: one request validator, nesting refused before any walk", () => {
  const hard = defineAgent({
    name: "hard",
    version: "1.0.0",
    description: "takes anything",
    intents: [],
    createDeps: () => undefined,
    tools: () => [
      defineTool({
        name: "take",
        description: "Takes a value.",
        input: z.object({ value: z.unknown() }),
        handler: () => ({ content: [{ type: "text", text: "taken" }] }),
      }),
    ],
  });
  /** The agent kit's endpoint, with the fast path (as agents serve) or without it (every request on the SDK's path). */
  async function serve(fast: boolean): Promise<{ url: string; close: () => Promise<void> }> {
    const { serverFor, fastToolCalls } = agentServing({ def: hard, deps: undefined, logger: silentLogger });
    const endpoint = new McpEndpoint({
      createServer: serverFor,
      ...(fast && fastToolCalls ? { fastToolCalls } : {}),
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      logger: silentLogger,
    });
    const http: HttpServer = await serveHttp({
      host: "127.0.0.1",
      port: 0,
      endpoint: (p) => (p === "/mcp" ? endpoint : undefined),
      endpointsHint: "/mcp",
      logger: silentLogger,
    });
    return {
      url: `${http.origin}/mcp`,
      close: async () => {
        await endpoint.close();
        await http.close();
      },
    };
  }
  let fast: Awaited<ReturnType<typeof serve>>;
  let sdk: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    [fast, sdk] = [await serve(true), await serve(false)];
  });
  afterAll(async () => {
    await fast.close();
    await sdk.close();
  });

  const take = modernCall("take", { value: 1 });
  const modern = (o: Record<string, string | undefined>) => ({ ...MODERN_HEADERS, "mcp-name": "take", ...o });
  const cases: { what: string; headers: Record<string, string | undefined>; body: string; status: number; code?: number }[] = [
    { what: "a well-formed call", headers: modern({}), body: take, status: 200 },
    { what: "Content-Type text/plain", headers: modern({ "content-type": "text/plain" }), body: take, status: 415, code: -32_000 },
    { what: "no Accept header", headers: modern({ accept: undefined }), body: take, status: 406, code: -32_000 },
    { what: "Accept without text/event-stream", headers: modern({ accept: "application/json" }), body: take, status: 406, code: -32_000 },
    {
      what: "revision 2099-01-01",
      headers: modern({ "mcp-protocol-version": "2099-01-01" }),
      body: modernCall("take", { value: 1 }, "2099-01-01"),
      status: 400,
      code: -32_022,
    },
    {
      what: "revision garbage",
      headers: modern({ "mcp-protocol-version": "garbage" }),
      body: modernCall("take", { value: 1 }, "garbage"),
      status: 400,
      code: -32_022,
    },
    {
      what: "header and body disagree",
      headers: modern({}),
      body: modernCall("take", { value: 1 }, "2099-01-01"),
      status: 400,
      code: -32_020,
    },
  ];

  it.each(cases)("2026-07-28, $what: the fast path answers as the SDK's path does ($status)", async ({ headers, body, status, code }) => {
    const [a, b] = [await post(fast.url, headers, body), await post(sdk.url, headers, body)];
    expect({ status: a.status, code: a.messages[0]?.error?.code }).toEqual({ status, code });
    expect({ status: b.status, code: b.messages[0]?.error?.code }).toEqual({ status, code });
    expect(a.messages[0]?.error?.message).toBe(b.messages[0]?.error?.message);
    if (code === -32_022) expect(a.messages[0]?.error?.data).toMatchObject({ supported: ["2026-07-28"] });
  });

  it("2025-11-25 session: the fast path refuses what the session's SDK transport refuses, with its errors", async () => {
    const [fastSid, sdkSid] = [await openSession(fast.url, "2025-11-25"), await openSession(sdk.url, "2025-11-25")];
    const session = (sid: string, o: Record<string, string | undefined>) => ({
      "content-type": "application/json",
      accept: BOTH,
      "mcp-session-id": sid,
      "mcp-protocol-version": "2025-11-25",
      ...o,
    });
    const body = JSON.stringify(legacyCall(3, "take", { value: 1 }));
    for (const [o, status] of [
      [{}, 200],
      [{ "content-type": "text/plain" }, 415],
      [{ accept: undefined }, 406],
      [{ accept: "application/json" }, 406],
      [{ "mcp-protocol-version": "garbage" }, 400],
    ] as const) {
      const [a, b] = [await post(fast.url, session(fastSid, o), body), await post(sdk.url, session(sdkSid, o), body)];
      expect([a.status, b.status], JSON.stringify(o)).toEqual([status, status]);
      expect(a.messages[0]?.error?.message, JSON.stringify(o)).toBe(b.messages[0]?.error?.message);
    }
    // An initialize with an unknown MCP-Protocol-Version: the same answer on both (the SDK's HeaderMismatch).
    const init = JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "limits-test", version: "1" } },
    });
    const initHeaders = { "content-type": "application/json", accept: BOTH, "mcp-protocol-version": "garbage" };
    const [a, b] = [await post(fast.url, initHeaders, init), await post(sdk.url, initHeaders, init)];
    expect([a.status, a.messages[0]?.error?.code]).toEqual([400, -32_020]);
    expect([b.status, b.messages[0]?.error?.message]).toEqual([a.status, a.messages[0]?.error?.message]);
  });

  it.each(["fast", "sdk"] as const)(
    "nesting past %s's body limit (a deep id, deep _meta) is a 400 invalid request, not a 500, and the next call works",
    async (which) => {
      const url = which === "fast" ? fast.url : sdk.url;
      const headers = modern({});
      const deepId = `{"jsonrpc":"2.0","id":${"[".repeat(20_000)}${"]".repeat(20_000)},"method":"tools/call","params":{"name":"take","arguments":{},"_meta":${JSON.stringify(ENVELOPE)}}}`;
      const nested = `${'{"a":'.repeat(6_000)}1${"}".repeat(6_000)}`; // ~30 KB
      const deepMeta = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"take","arguments":{},"_meta":{${JSON.stringify(ENVELOPE).slice(1, -1)},"x":${nested}}}}`;
      for (const body of [deepId, deepMeta]) {
        const r = await post(url, headers, body);
        expect(r.status).toBe(400);
        expect(r.messages[0]?.error?.code).toBe(-32_600);
        expect(r.messages[0]?.error?.message).toContain(`deeper than ${MAX_BODY_DEPTH} levels`);
      }
      // Brackets inside strings are text, not nesting (escaped quotes and backslashes included).
      expect((await post(url, headers, modernCall("take", { value: "[".repeat(10_000) }))).status).toBe(200);
      expect((await post(url, headers, modernCall("take", { value: `\\"${"{".repeat(100)}\\` }))).status).toBe(200);
    },
  );
});

describe("real processes: batches, the gateway's limits and deadlines", () => {
  const LIMIT = 3;
  /** The gateway's idle timeout here (its default is 60 s): the limit a hung replica runs into. */
  const IDLE_MS = 2_000;
  let consul: TestConsul;
  let slow: TestAgent;
  const hung: TestAgent[] = [];
  let gateway: TestAgent;

  beforeAll(async () => {
    consul = await startTestConsul();
    slow = await spawnAgent(SLOW, consul.address, { args: ["--max-concurrent-calls", String(LIMIT)] });
    hung.push(
      ...(await Promise.all(
        ["hungone", "hungone", "hungall", "hungall", "hungtwo", "hungtwo"].map((name) =>
          spawnAgent(PROBE, consul.address, { env: { PROBE_NAME: name } }),
        ),
      )),
    );
    gateway = await spawnAgent(GATEWAY, consul.address, {
      readyMessage: "gateway ready",
      env: { MESH_GATEWAY_IDLE_TIMEOUT_MS: String(IDLE_MS) },
    });
  }, 60_000);
  afterAll(async () => {
    for (const a of hung) a.process.signal("SIGCONT");
    await Promise.all([gateway, slow, ...hung].filter(Boolean).map((a) => a.process.stop(2_000)));
    await consul?.stop();
  });

  it("each call of a JSON-RPC batch counts against the concurrency limit: the excess is refused with the single call's OVERLOADED error, and the agent keeps serving", async () => {
    const url = slow.url!;
    // 2025-03-26 is the one revision with batches: there they work, within the limit.
    const sid = await openSession(url, "2025-03-26");
    const headers = { "content-type": "application/json", accept: BOTH, "mcp-session-id": sid };
    const batch = (n: number, ms: number) => JSON.stringify(Array.from({ length: n }, (_, i) => legacyCall(100 + i, "sleep", { ms })));
    const small = await post(url, headers, batch(2, 50));
    expect(small.status).toBe(200);
    expect(small.messages.map((m) => m.id).sort()).toEqual([100, 101]);
    expect(small.messages.every((m) => m.result && !m.result["isError"])).toBe(true);

    // A single call past the limit, for comparison: 503, OVERLOADED, not started.
    const busy = Array.from({ length: LIMIT }, () => post(url, headers, JSON.stringify(legacyCall(1, "sleep", { ms: 1_500 }))));
    await eventually(async () => ((await (await fetch(new URL("/healthz", url))).json()) as { calls: number }).calls === LIMIT, {
      timeoutMs: 5_000,
      what: `the agent running ${LIMIT} calls`,
    });
    const single = await post(url, headers, JSON.stringify(legacyCall(2, "sleep", { ms: 10 })));
    expect(single.status).toBe(503);
    expect(single.messages[0]?.error?.code).toBe(OVERLOADED_ERROR_CODE);
    const refusal = single.messages[0]!.error!.message;
    expect(refusal).toMatch(/^Overloaded: this instance is running 3 tool calls, its limit \(3\); the call was not started/);
    // A batch while the limit is taken: refused the same way, every member named, nothing started.
    const refused = await post(url, headers, batch(2, 10));
    expect(refused.status).toBe(503);
    expect(refused.messages.map((m) => [m.id, m.error?.code, m.error?.message])).toEqual([
      [100, OVERLOADED_ERROR_CODE, refusal],
      [101, OVERLOADED_ERROR_CODE, refusal],
    ]);
    await Promise.all(busy);

    // A batch four times the limit, idle agent: as many run as the limit allows, the excess
    // is refused in the batch's answer with the single call's error, not started.
    const big = await post(url, headers, batch(4 * LIMIT, 300));
    expect(big.status).toBe(200);
    expect(big.messages).toHaveLength(4 * LIMIT);
    const ran = big.messages.filter((m) => m.result);
    const excess = big.messages.filter((m) => m.error);
    expect(ran).toHaveLength(LIMIT);
    expect(ran.every((m) => !m.result!["isError"])).toBe(true);
    expect(excess).toHaveLength(3 * LIMIT);
    expect(new Set(excess.map((m) => `${m.error!.code} ${m.error!.message}`))).toEqual(new Set([`${OVERLOADED_ERROR_CODE} ${refusal}`]));

    // 2025-11-25 has no batches: the 800-at-once of the issue is refused, nothing run.
    const sid25 = await openSession(url, "2025-11-25");
    const headers25 = { ...headers, "mcp-session-id": sid25, "mcp-protocol-version": "2025-11-25" };
    const bypass = await post(url, headers25, batch(4 * LIMIT, 500));
    expect(bypass.status).toBe(400);
    expect(bypass.messages[0]?.error?.code).toBe(-32_600);
    const withinLimit = await post(url, headers25, batch(2, 10));
    expect(withinLimit.status).toBe(400);
    expect(withinLimit.messages[0]?.error).toMatchObject({ code: -32_600 });
    expect(withinLimit.messages[0]?.error?.message).toMatch(
      /MCP 2025-11-25, which has no JSON-RPC batches.*send each message in its own POST/,
    );

    // Still serving, and nothing left counted.
    const after = await post(url, headers, JSON.stringify(legacyCall(9, "sleep", { ms: 10 })));
    expect(after.status).toBe(200);
    expect(after.messages.at(-1)?.result?.["isError"]).toBeFalsy();
    expect(((await (await fetch(new URL("/healthz", url))).json()) as { calls: number }).calls).toBe(0);
  });

  it("30 KB of nested _meta or a deep id through the gateway: 400 invalid request, never AGENT_UNREACHABLE or a 500; the gateway keeps serving", async () => {
    const url = gateway.url!;
    const headers = { ...MODERN_HEADERS, "mcp-name": "slow__sleep" };
    const nested = `${'{"a":'.repeat(6_000)}1${"}".repeat(6_000)}`;
    const deepMeta = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow__sleep","arguments":{"ms":1},"_meta":{${JSON.stringify(ENVELOPE).slice(1, -1)},"x":${nested}}}}`;
    const deepId = `{"jsonrpc":"2.0","id":${"[".repeat(20_000)}${"]".repeat(20_000)},"method":"tools/call","params":{"name":"slow__sleep","arguments":{"ms":1},"_meta":${JSON.stringify(ENVELOPE)}}}`;
    for (const body of [deepMeta, deepId]) {
      const r = await post(url, headers, body);
      expect(r.status).toBe(400);
      expect(r.messages[0]?.error?.code).toBe(-32_600);
      expect(JSON.stringify(r.messages)).not.toMatch(/AGENT_UNREACHABLE|DELIVERY_UNKNOWN/);
    }
    // The same limit guards the gateway's A2A endpoint (metadata nested 3,000 deep).
    const a2aMessage = `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"sleep 1"}],"metadata":${'{"a":'.repeat(3_000)}1${"}".repeat(3_000)}}}}`;
    const a2a = await post(new URL("/a2a/slow", url).toString(), { "content-type": "application/json", accept: BOTH }, a2aMessage);
    expect(a2a.status).toBe(400);
    expect(a2a.messages[0]?.error?.code).toBe(-32_600);
    expect(JSON.stringify(a2a.messages)).not.toMatch(/call stack/i);
    await eventually(
      async () => {
        const ok = await post(url, headers, modernCall("slow__sleep", { ms: 1 }));
        return ok.status === 200 && ok.messages.at(-1)?.result?.["isError"] !== true;
      },
      { timeoutMs: 10_000, what: "a normal call through the gateway" },
    );
  });

  it("the console cannot be framed by another page: CSP frame-ancestors 'none' and X-Frame-Options DENY", async () => {
    const res = await fetch(`${new URL(gateway.url!).origin}/ui`);
    await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
  });

  /** Calls `agent`.context through the gateway as a client that sends no deadline (or this one, in ms from now); the result. */
  async function viaGateway(agent: string, deadlineMs?: number) {
    const client = await connectHttp(gateway.url!);
    try {
      const _meta = deadlineMs === undefined ? {} : { "io.toolmesh/deadline": new Date(Date.now() + deadlineMs).toISOString() };
      const r = await client.callTool({ name: `${agent}__context`, arguments: {}, _meta });
      return r as { isError?: boolean; content: { type: string; text?: string }[]; structuredContent?: { pid?: number } };
    } finally {
      await client.close();
    }
  }
  /** Waits until the gateway has sent calls of `agent` to both its replicas. */
  async function untilBothServe(agent: string, replicas: TestAgent[]) {
    const seen = new Set<number>();
    await eventually(
      async () => {
        const r = await viaGateway(agent);
        if (r.structuredContent?.pid) seen.add(r.structuredContent.pid);
        return replicas.every((a) => seen.has(a.process.pid!));
      },
      { timeoutMs: 15_000, what: `calls of ${agent} served by both replicas` },
    );
  }

  it("a hung replica (SIGSTOP), a client with no deadline: the read-only call fails over to the healthy replica and succeeds", async () => {
    const [a, b] = hung.slice(0, 2) as [TestAgent, TestAgent];
    await untilBothServe("hungone", [a, b]);
    a.process.signal("SIGSTOP");
    try {
      // Round robin sends some of these to the paused replica before anyone notices it.
      const results = await Promise.all(Array.from({ length: 4 }, () => viaGateway("hungone")));
      for (const r of results) {
        expect(r.isError, r.content[0]?.text).toBeFalsy();
        expect(r.structuredContent?.pid).toBe(b.process.pid);
      }
      // It really went to the hung one first, and moved on.
      expect(gateway.logs().some((l) => String(l["msg"]).includes("no answer from the instance") && l["instance"] === a.instanceId)).toBe(
        true,
      );
    } finally {
      a.process.signal("SIGCONT");
    }
  });

  it("every replica hangs: the error names the limit really in force (the gateway's idle timeout), not a deadline of an hour", async () => {
    const replicas = hung.slice(2, 4);
    await untilBothServe("hungall", replicas);
    for (const r of replicas) r.process.signal("SIGSTOP");
    try {
      const r = await viaGateway("hungall");
      expect(r.isError).toBe(true);
      const text = r.content[0]?.text ?? "";
      expect(text).toContain(`TIMEOUT): hungall.context on hungall-`);
      expect(text).toContain(`sent no answer and no progress within ${IDLE_MS} ms`);
      expect(text).not.toContain("3600000");
    } finally {
      for (const r of replicas) r.process.signal("SIGCONT");
    }
    // A client that sent a deadline shorter than that: the error names the client's deadline.
    await untilBothServe("hungall", replicas);
    for (const r of replicas) r.process.signal("SIGSTOP");
    try {
      const r = await viaGateway("hungall", 1_200);
      expect(r.isError).toBe(true);
      expect(r.content[0]?.text).toMatch(/did not answer within its deadline \(1\d{3} ms\)/);
    } finally {
      for (const r of replicas) r.process.signal("SIGCONT");
    }
  });

  it("every replica hangs, two calls at once (one from the console's form): each says which limit each replica ran into", async () => {
    const replicas = hung.slice(4, 6);
    await untilBothServe("hungtwo", replicas);
    for (const r of replicas) r.process.signal("SIGSTOP");
    try {
      // Each call finds the replica the other call left out of rotation.
      const fromConsole = fetch(`${new URL(gateway.url!).origin}/ui/api/call`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ agent: "hungtwo", tool: "context", arguments: {} }),
      }).then((res) => res.json() as Promise<{ error?: string }>);
      const [viaMcp, viaConsole] = await Promise.all([viaGateway("hungtwo"), fromConsole]);
      expect(viaMcp.isError).toBe(true);
      for (const message of [viaMcp.content[0]?.text ?? "", viaConsole.error ?? ""]) {
        expect(message).toMatch(/no answer and no progress within \d+ ms/);
        expect(message).toContain(`${IDLE_MS} ms`);
        expect(message).not.toMatch(/3600000|AGENT_UNREACHABLE/);
      }
    } finally {
      for (const r of replicas) r.process.signal("SIGCONT");
    }
  });
});
