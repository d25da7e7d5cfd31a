// HTTP hardening of the agent kit's server, in process: slow clients and hostile arguments.
import { connect } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { bound } from "../helpers/eventually.ts";
import { z } from "zod";
import { defineAgent } from "../../src/agent/definition.ts";
import { agentServerFactory } from "../../src/agent/server.ts";
import { defineTool } from "../../src/agent/tools.ts";
import { McpEndpoint } from "../../src/mcp/endpoint.ts";
import { DEFAULT_MAX_BODY_BYTES, serveHttp, type HttpServer } from "../../src/http/server.ts";
import { MAX_ARGUMENT_BYTES } from "../../src/protocol/limits.ts";
import { silentLogger } from "../../src/logger.ts";
import { connectHttp, connectV1 } from "../helpers/agents.ts";

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

/** The agent kit's HTTP server with one MCP endpoint on /mcp, as an agent serves it. */
async function serve(options: { maxSessions?: number } = {}): Promise<{ http: HttpServer; endpoint: McpEndpoint; url: string }> {
  const endpoint = new McpEndpoint({
    createServer: agentServerFactory({ def: hard, deps: undefined, logger: silentLogger }),
    maxSessions: options.maxSessions,
    idleMs: 60_000,
    maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
    logger: silentLogger,
  });
  const http = await serveHttp({
    host: "127.0.0.1",
    port: 0,
    endpoint: (path) => (path === "/mcp" ? endpoint : undefined),
    endpointsHint: "/mcp",
    headersTimeoutMs: 500,
    requestTimeoutMs: 1_000,
    healthInfo: () => ({ sessions: endpoint.legacy.size, evicted: endpoint.legacy.evicted }),
    logger: silentLogger,
  });
  return { http, endpoint, url: `${http.origin}/mcp` };
}

let server: Awaited<ReturnType<typeof serve>>;
let http: HttpServer;

beforeAll(async () => {
  server = await serve();
  http = server.http;
});
afterAll(async () => {
  await server.endpoint.close();
  await http.close();
});

/** Opens a raw connection, writes `chunks` (one every `everyMs`), resolves with how many were still unsent when the server closed it. */
function slowClient(chunks: string[], everyMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(http.port, "127.0.0.1");
    let i = 0;
    const timer = setInterval(() => {
      if (i < chunks.length && !socket.destroyed) socket.write(chunks[i++]!);
    }, everyMs);
    socket.on("close", () => {
      clearInterval(timer);
      resolve(chunks.length - i);
    });
    socket.on("error", () => undefined);
    const limit = bound(10_000);
    setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error(`the server kept a slow client connected for ${limit} ms`));
    }, limit);
  });
}

// Cut off before it was done: its 3.6 s of headers (4 s of body) against a headers timeout of
// 0.5 s (request timeout 1 s), checked every second; an order, not a time.
it("a client that never finishes its headers (slowloris) is cut off after the headers timeout", async () => {
  const header = ["POST /mcp HTTP/1.1\r\n", "Host: 127.0.0.1\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n", "X-D: 4\r\n"];
  const unsent = await slowClient([...header, ...header, ...header], 200);
  expect(unsent).toBeGreaterThan(0);
});

it("a client that trickles its body is cut off after the request timeout", async () => {
  const head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
  const unsent = await slowClient([head, ...Array.from({ length: 40 }, () => "          ")], 100);
  expect(unsent).toBeGreaterThan(0);
});

it("past the session limit, a new 2025-11-25 session evicts the least recently used one; its client gets 404 and can start again", async () => {
  const small = await serve({ maxSessions: 2 });
  try {
    const [a, b] = [await connectV1(small.url), await connectV1(small.url)];
    await b.ping(); // a is now the least recently used
    const c = await connectV1(small.url);
    expect(small.endpoint.legacy.size).toBe(2);
    await expect(a.ping()).rejects.toThrow(/Session not found/);
    await b.ping();
    await c.ping();
    const health = (await (await fetch(`${small.http.origin}/healthz`)).json()) as { evicted: number };
    expect(health.evicted).toBe(1);
    // 2026-07-28 clients hold no session: they are never evicted and take no slot.
    const modern = await connectHttp(small.url);
    await modern.listTools();
    expect(small.endpoint.legacy.size).toBe(2);
    await Promise.all([a, b, c, modern].map((x) => x.close().catch(() => undefined)));
  } finally {
    await small.endpoint.close();
    await small.http.close();
  }
});

it.each(["modern", "legacy"] as const)(
  "arguments nested too deep or too large get a clear invalid-params error, and the connection keeps working (%s)",
  async (era) => {
    const client = await connectHttp(server.url, { era });
    const nest = (levels: number) => {
      let deep: unknown = "leaf";
      for (let i = 0; i < levels; i++) deep = [deep];
      return deep;
    };
    await expect(client.callTool({ name: "take", arguments: { value: nest(40) } })).rejects.toThrow(/nest deeper than 32 levels/);
    // Far deeper: refused from the request's text before it is parsed (the whole body's limit).
    await expect(client.callTool({ name: "take", arguments: { value: nest(1_000) } })).rejects.toThrow(
      /Invalid request: the request body nests objects or arrays deeper than 64 levels/,
    );
    await expect(client.callTool({ name: "take", arguments: { value: "x".repeat(MAX_ARGUMENT_BYTES + 10) } })).rejects.toThrow(
      /arguments are \d+ bytes; the limit is 1048576/,
    );
    const ok = await client.callTool({ name: "take", arguments: { value: { a: [1, 2, { b: "c" }] } } });
    expect(ok.isError).toBeFalsy();
    await client.close();
  },
);
