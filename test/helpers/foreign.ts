import { spawn, type ChildProcess } from "node:child_process";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const FOREIGN = fileURLToPath(new URL("../fixtures/foreignServer.ts", import.meta.url));

/** A third-party MCP server process (test/fixtures/foreignServer.ts) and what it recorded. */
export interface ForeignServer {
  url: string;
  /** Events it recorded so far (requests with their Authorization header, cancellations...). */
  events: Record<string, unknown>[];
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function startForeignServer(port = 0): Promise<ForeignServer> {
  const child = spawn(process.execPath, [FOREIGN, "--port", String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  const events: Record<string, unknown>[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const event = JSON.parse(line) as Record<string, unknown>;
      events.push(event);
      if (event["event"] === "ready") resolve(event["url"] as string);
    });
    child.once("exit", (code) => reject(new Error(`foreign server exited with ${code} before it was ready`)));
  });
  return {
    url,
    events,
    process: child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** An HTTP server that answers everything with 200 text/plain: a web page, not MCP. */
export async function startPlainServer(): Promise<{ url: string; server: HttpServer }> {
  const server = createHttpServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain" }).end("hello from a plain web server\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`, server };
}

/** A TCP server that accepts connections and never answers (a hung process, a black hole). */
export async function startStalledServer(): Promise<{ url: string; server: TcpServer; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
    socket.resume();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`,
    server,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
