#!/usr/bin/env node
// The yardstick for the gateway's cost: a plain node:http reverse proxy that forwards each
// request's bytes to one upstream URL on pooled keep-alive connections and streams the
// answer back, reading nothing (no routing, no auth, no rewriting). Prints its URL on stdout.
// Usage: node bench/plainProxy.ts <upstream URL>
import { Agent, createServer, request } from "node:http";

const upstream = new URL(process.argv[2] ?? "");
const agent = new Agent({ keepAlive: true, maxSockets: 256 });
/** Hop-by-hop headers (RFC 9110 §7.6.1): they are the connection's, not the message's. */
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host"]);

const server = createServer((req, res) => {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
  const out = request(
    { host: upstream.hostname, port: upstream.port, path: upstream.pathname, method: req.method, headers, agent },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  out.on("error", () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  req.pipe(out);
});
server.keepAliveTimeout = 30_000;
server.listen(0, "127.0.0.1", () => {
  const a = server.address();
  if (a && typeof a === "object") console.log(`http://127.0.0.1:${a.port}${upstream.pathname}`);
});
