// HTTP hardening of the agent kit's server, in process: slow clients and hostile arguments.
import { connect } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { z } from "zod";
import { installMeshContext } from "../../src/agent/contextMiddleware.ts";
import { serveHttp, type HttpAgentServer } from "../../src/http/server.ts";
import { MAX_ARGUMENT_BYTES } from "../../src/protocol/limits.ts";
import { createMcpServer } from "../../src/agent/mcpServer.ts";
import { silentLogger } from "../../src/logger.ts";
import { connectHttp } from "../helpers/agents.ts";

let http: HttpAgentServer;

beforeAll(async () => {
  http = await serveHttp({
    createServer: () => {
      const s = createMcpServer({ name: "hard", version: "1" });
      s.registerTool("take", { inputSchema: { value: z.unknown() } }, () => ({ content: [{ type: "text", text: "taken" }] }));
      return s;
    },
    onConnect: (t) => installMeshContext(t, "hard", silentLogger),
    host: "127.0.0.1",
    port: 0,
    mcpPath: "/mcp",
    sessionIdleMs: 60_000,
    headersTimeoutMs: 500,
    requestTimeoutMs: 1_000,
  });
});
afterAll(async () => {
  await http.close();
});

/** Opens a raw connection, writes `chunks` (one every `everyMs`), resolves with the ms until the server closed it. */
function slowClient(chunks: string[], everyMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(http.port, "127.0.0.1");
    let i = 0;
    const timer = setInterval(() => {
      if (i < chunks.length && !socket.destroyed) socket.write(chunks[i++]!);
    }, everyMs);
    socket.on("close", () => {
      clearInterval(timer);
      resolve(performance.now() - started);
    });
    socket.on("error", () => undefined);
    setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error("the server kept a slow client connected for 10 s"));
    }, 10_000);
  });
}

it("a client that never finishes its headers (slowloris) is cut off after the headers timeout", async () => {
  const header = ["POST /mcp HTTP/1.1\r\n", "Host: 127.0.0.1\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n", "X-D: 4\r\n"];
  const ms = await slowClient([...header, ...header, ...header], 200);
  expect(ms).toBeLessThan(3_000);
});

it("a client that trickles its body is cut off after the request timeout", async () => {
  const head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
  const ms = await slowClient([head, ...Array.from({ length: 40 }, () => "          ")], 100);
  expect(ms).toBeLessThan(4_000);
});

it("past the session limit, a new session evicts the least recently used one; its client gets 404 and can start again", async () => {
  const small = await serveHttp({
    createServer: () => createMcpServer({ name: "small", version: "1" }),
    host: "127.0.0.1",
    port: 0,
    mcpPath: "/mcp",
    sessionIdleMs: 60_000,
    maxSessions: 2,
  });
  try {
    const [a, b] = [await connectHttp(small.url), await connectHttp(small.url)];
    await b.ping(); // a is now the least recently used
    const c = await connectHttp(small.url);
    expect(small.sessionCount).toBe(2);
    await expect(a.ping()).rejects.toThrow(/Session not found/);
    await b.ping();
    await c.ping();
    const health = (await (await fetch(small.url.replace(/\/mcp$/, "/healthz"))).json()) as { evicted: number };
    expect(health.evicted).toBe(1);
    await Promise.all([a, b, c].map((x) => x.close().catch(() => undefined)));
  } finally {
    await small.close();
  }
});

it("arguments nested too deep or too large get a clear invalid-params error, and the session keeps working", async () => {
  const client = await connectHttp(http.url);
  let deep: unknown = "leaf";
  for (let i = 0; i < 1_000; i++) deep = [deep];
  await expect(client.callTool({ name: "take", arguments: { value: deep } })).rejects.toThrow(/nest deeper than 32 levels/);
  await expect(client.callTool({ name: "take", arguments: { value: "x".repeat(MAX_ARGUMENT_BYTES + 10) } })).rejects.toThrow(
    /arguments are \d+ bytes; the limit is 1048576/,
  );
  const ok = await client.callTool({ name: "take", arguments: { value: { a: [1, 2, { b: "c" }] } } });
  expect(ok.isError).toBeFalsy();
  await client.close();
});
