#!/usr/bin/env node
// The baseline: a default MCP TypeScript SDK server, as its README sets one up (McpServer,
// StreamableHTTPServerTransport, a stateful session per client, default options), with the
// same `echo` tool. Prints its URL on stdout.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

const transports = new Map<string, StreamableHTTPServerTransport>();

function newServer(): McpServer {
  const server = new McpServer({ name: "plain", version: "1" });
  server.registerTool("echo", { description: "Returns the payload.", inputSchema: { payload: z.string() } }, ({ payload }) => ({
    content: [{ type: "text", text: payload }],
  }));
  return server;
}

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
}

const http = createServer((req, res) => {
  void (async () => {
    const sid = req.headers["mcp-session-id"] as string | undefined;
    const parsed = req.method === "POST" ? await body(req) : undefined;
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport && req.method === "POST" && isInitializeRequest(parsed)) {
      const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void transports.set(id, t),
      });
      await newServer().connect(t);
      transport = t;
    }
    if (!transport) {
      res.writeHead(400).end("no session");
      return;
    }
    await transport.handleRequest(req, res, parsed);
  })();
});
http.listen(0, "127.0.0.1", () => {
  const a = http.address();
  if (a && typeof a === "object") console.log(`http://127.0.0.1:${a.port}/mcp`);
});
