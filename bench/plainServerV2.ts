#!/usr/bin/env node
// The v2 baseline: a default MCP TypeScript SDK v2 server, as its "Serve over HTTP" guide sets
// one up (createMcpHandler with a fresh McpServer per request, toNodeHandler on node:http),
// with the same `echo` tool. It serves 2026-07-28 requests (2025-era requests are refused:
// the guide's stateless default). Prints its URL on stdout.
import { createServer } from "node:http";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { createMcpHandler, McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";

const handler = createMcpHandler(() => {
  const server = new McpServer({ name: "plain-v2", version: "1" });
  server.registerTool("echo", { description: "Returns the payload.", inputSchema: z.object({ payload: z.string() }) }, ({ payload }) => ({
    content: [{ type: "text", text: payload }],
  }));
  return server;
});
const node = toNodeHandler(handler);
const http = createServer((req, res) => void node(req, res));
http.listen(0, "127.0.0.1", () => {
  const a = http.address();
  if (a && typeof a === "object") console.log(`http://127.0.0.1:${a.port}/mcp`);
});
