// The gateway as a proxy: a complete result in the shape a toolmesh agent writes goes back to
// the client as the agent wrote it (only the serverInfo and the id are the gateway's), while
// anything else — a result with more in its _meta, another layout, garbage — is read and
// written again as before, and a hostile answer never takes the gateway down.
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnAgent, type TestAgent } from "../helpers/agents.ts";
import { startTestConsul, type TestConsul } from "../helpers/consul.ts";
import { eventually } from "../helpers/eventually.ts";

const GATEWAY = fileURLToPath(new URL("../../orchestrator/gateway/main.ts", import.meta.url));
const INFO = `"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"shaped","version":"1"}}`;

/** What the agent answers a tools/call of each tool with (`ID` is replaced by the request's id). */
const ANSWERS: Record<string, string> = {
  // The toolmesh shape, with number formatting and escapes a re-serialisation would change.
  shaped: `{"result":{"content":[{"type":"text","text":"caf\\u00e9 ,\\"_meta\\":{}"}],"structuredContent":{"n":1.50,"e":1e2},"resultType":"complete",${INFO}},"jsonrpc":"2.0","id":ID}`,
  // More than the serverInfo in _meta: the reserved key is stripped, the rest kept, the result serialised again.
  extra: `{"result":{"content":[{"type":"text","text":"x"}],"structuredContent":{"n":1.50},"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"shaped","version":"1"},"mine":1}},"jsonrpc":"2.0","id":ID}`,
  // Another key order: read and written again.
  reordered: `{"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"text","text":"y"}],"structuredContent":{"n":1.50},"resultType":"complete",${INFO}}}`,
  // Garbage of every kind: each becomes an error for its own call.
  notJson: `{"result":{"content":[`,
  nullResult: `{"result":null,"jsonrpc":"2.0","id":ID}`,
  arrayResult: `{"result":[1,2],"jsonrpc":"2.0","id":ID}`,
  wrongId: `{"result":{"content":[],"resultType":"complete",${INFO}},"jsonrpc":"2.0","id":"nope"}`,
  topLevelArray: `[{"result":{},"jsonrpc":"2.0","id":ID}]`,
  // The shape's prefix and suffix around a cut that is not the result's own _meta: never passed on as text.
  trick: `{"result":{"content":[{"type":"text","text":"z"}],"resultType":"complete",${INFO}},"x":{${INFO}},"jsonrpc":"2.0","id":ID}`,
};
const TOOLS = Object.keys(ANSWERS);

let consul: TestConsul;
let gateway: TestAgent;
let agent: Server;
/** The bodies of the tools/call requests the agent received. */
const received: string[] = [];

beforeAll(async () => {
  consul = await startTestConsul();
  agent = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      let m: { id: number; method: string; params?: { name?: string } };
      try {
        m = JSON.parse(raw) as typeof m;
      } catch {
        res.writeHead(400).end();
        return;
      }
      const meta = { "io.modelcontextprotocol/serverInfo": { name: "shaped", version: "1" } };
      let body: string;
      if (m.method === "tools/call") {
        received.push(raw);
        body = (ANSWERS[m.params?.name ?? ""] ?? ANSWERS["notJson"]!).replace("ID", JSON.stringify(m.id));
      } else if (m.method === "tools/list") {
        const tools = TOOLS.map((name) => ({ name, inputSchema: { type: "object" }, annotations: { readOnlyHint: true } }));
        body = JSON.stringify({
          jsonrpc: "2.0",
          id: m.id,
          result: { tools, ttlMs: 0, cacheScope: "private", resultType: "complete", _meta: meta },
        });
      } else if (m.method !== "server/discover") {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: m.id ?? null, error: { code: -32601, message: "Method not found" } }));
        return;
      } else {
        const result = { supportedVersions: ["2026-07-28"], capabilities: { tools: {} }, resultType: "complete", _meta: meta };
        body = JSON.stringify({ jsonrpc: "2.0", id: m.id, result });
      }
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    });
  });
  await new Promise<void>((resolve) => agent.listen(0, "127.0.0.1", resolve));
  const port = (agent.address() as { port: number }).port;
  await consul.client.registerService({
    id: "shaped-1",
    name: "shaped",
    address: "127.0.0.1",
    port,
    tags: ["mcp"],
    meta: { toolmesh_version: "test", mcp_protocols: "2026-07-28", mcp_path: "/mcp" },
  });
  gateway = await spawnAgent(GATEWAY, consul.address, { readyMessage: "gateway ready" });
  await eventually(async () => (await call("/agents/shaped/mcp", "shaped", 0)).text.includes(`"result"`), {
    timeoutMs: 10_000,
    what: "the gateway to offer the shaped agent's tools",
  });
});
afterAll(async () => {
  await gateway.process.stop(2_000);
  agent.close();
  await consul.stop();
});

/** One 2026-07-28 tools/call, straight to the gateway. */
async function call(path: string, name: string, id: number | string): Promise<{ status: number; text: string }> {
  const res = await fetch(new URL(path, gateway.url), {
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
        arguments: {},
        _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} },
      },
    }),
  });
  return { status: res.status, text: await res.text() };
}

describe("the gateway passes an agent's answer on as the agent wrote it", () => {
  it.each([
    ["/agents/shaped/mcp", "shaped", "shaped"],
    ["/mcp", "shaped__shaped", "toolmesh-gateway"],
  ])("through %s: the result's bytes, with the gateway's serverInfo and the client's id", async (path, name, server) => {
    const { status, text } = await call(path, name, "client-7");
    expect(status).toBe(200);
    // Number formatting and escapes survive: the result was not parsed and written again.
    expect(text).toContain(`"structuredContent":{"n":1.50,"e":1e2}`);
    expect(text).toContain(String.raw`"text":"caf\u00e9 ,\"_meta\":{}"`);
    const answer = JSON.parse(text) as { id: unknown; result: { _meta: Record<string, { name: string }>; resultType: string } };
    expect(answer.id).toBe("client-7");
    expect(answer.result.resultType).toBe("complete");
    expect(answer.result._meta["io.modelcontextprotocol/serverInfo"]!.name).toBe(path === "/mcp" ? server : "shaped");
    // And what the agent got is the call with only the name and the context rewritten.
    const sent = received.at(-1)!;
    expect(sent).toContain(`"name":"shaped"`);
    expect(sent).toContain('"io.toolmesh/caller":["gateway"]');
  });

  it("a result with more in its _meta, or laid out otherwise, is read and written again, the reserved keys stripped", async () => {
    for (const tool of ["extra", "reordered"]) {
      const { status, text } = await call("/agents/shaped/mcp", tool, 3);
      expect(status, text).toBe(200);
      expect(text).toContain(`"structuredContent":{"n":1.5}`);
      const answer = JSON.parse(text) as { id: unknown; result: { _meta: Record<string, unknown> } };
      expect(answer.id).toBe(3);
      if (tool === "extra") expect(answer.result._meta["mine"]).toBe(1);
    }
  });

  it("a hostile or garbled answer is an error for its own call; the gateway keeps serving", async () => {
    for (const tool of ["notJson", "nullResult", "arrayResult", "wrongId", "topLevelArray", "trick"]) {
      const { status, text } = await call("/agents/shaped/mcp", tool, 9);
      expect(status, `${tool}: ${text}`).toBe(200);
      const answer = JSON.parse(text) as { id: unknown; result?: { isError?: boolean; content?: unknown[] }; error?: unknown };
      expect(answer.id, tool).toBe(9);
      if (tool === "trick") {
        // Valid JSON whose text has the shape's ends around a foreign member: read and written again, nothing foreign passed on.
        expect(text).not.toContain(`"x":`);
        expect(answer.result?.content).toEqual([{ type: "text", text: "z" }]);
      } else expect(answer.result?.isError ?? answer.error !== undefined, `${tool}: ${text}`).toBe(true);
    }
    expect((await call("/agents/shaped/mcp", "shaped", 10)).text).toContain(`"n":1.50`);
  });
});
