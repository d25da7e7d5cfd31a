#!/usr/bin/env node
// The floor: a node:http server that answers a JSON-RPC tools/call with its payload, as JSON,
// doing nothing else (no MCP, no validation). Prints its URL on stdout.
import { createServer } from "node:http";

const http = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const m = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id: number; params: { arguments: { payload: string } } };
    const body = JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: m.params.arguments.payload }] } });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
  });
});
http.listen(0, "127.0.0.1", () => {
  const a = http.address();
  if (a && typeof a === "object") console.log(`http://127.0.0.1:${a.port}/mcp`);
});
