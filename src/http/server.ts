import { DRAINING_ERROR_CODE, OVERLOADED_ERROR_CODE } from "../protocol/codes.ts";
import { randomUUID } from "node:crypto";
import { challenge, type TokenVerifier } from "./auth.ts";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";

/** What the HTTP layer needs of a server: an McpServer, or the SDK's low-level Server. */
export interface ConnectableServer {
  connect(transport: Transport): Promise<void>;
  close(): Promise<void>;
}
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { silentLogger, type Logger } from "../logger.ts";
import { MeshError } from "../protocol/errors.ts";

/** Largest request body accepted on the MCP endpoint. @default 4194304 (4 MiB) */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/**
 * Sessions one instance keeps (each holds a server with its tools, a few hundred KiB): past
 * this, opening one evicts the least recently used, whose client re-initializes on its next
 * request (toolmesh callers do so by themselves). Bounds memory against clients that open
 * sessions and never close them. @default 512
 */
export const DEFAULT_MAX_SESSIONS = 512;

export interface HttpAgentServerOptions {
  /** A fresh server for each MCP session. */
  createServer: () => ConnectableServer;
  /** More MCP endpoints by path (e.g. the gateway's /agents/<name>/mcp); undefined: 404. */
  routes?: (path: string) => (() => ConnectableServer) | undefined;
  /**
   * Takes a POST of an existing session before the SDK transport does (the gateway's
   * tools/call fast path); returns false to leave it to the transport.
   */
  fastPath?: (server: ConnectableServer, body: unknown, res: ServerResponse) => boolean;
  /** Longest a client may take to send its request headers. @default 10000 */
  headersTimeoutMs?: number;
  /** Longest a client may take to send a whole request. @default 30000 */
  requestTimeoutMs?: number;
  /** Bearer tokens the MCP endpoints require (401 without an accepted one). Default: open. */
  verifier?: TokenVerifier;
  /** Tool calls run at once; more are refused with 503 OVERLOADED before they start. Default: no limit. */
  maxConcurrentCalls?: number;
  /** Says what else `routes` serves, for 404 messages. */
  routesHint?: string;
  /** Called once per session after the server is connected (e.g. to install middleware). */
  onConnect?: (transport: StreamableHTTPServerTransport) => void;
  host: string;
  port: number;
  mcpPath: string;
  sessionIdleMs: number;
  /** Most sessions kept at once; a new one evicts the least recently used. @default DEFAULT_MAX_SESSIONS */
  maxSessions?: number;
  /** @default DEFAULT_MAX_BODY_BYTES */
  maxBodyBytes?: number;
  /**
   * Host names the MCP endpoint answers to (DNS-rebinding protection): a request whose Host,
   * or Origin if it sends one, names another host gets 403. Default: loopback names and the
   * bind host.
   */
  allowedHosts?: readonly string[];
  /** Extra fields for the /healthz answer (agent name, instance id...). */
  healthInfo?: () => Record<string, unknown>;
  logger?: Logger;
}

export interface HttpAgentServer {
  /** Where the MCP endpoint listens, e.g. http://127.0.0.1:40123/mcp */
  readonly url: string;
  readonly port: number;
  /** MCP POST requests being handled (tool calls and their streamed answers). */
  readonly inFlight: number;
  readonly sessionCount: number;
  readonly draining: boolean;
  /** From now on, /healthz answers 503 and new sessions and tool calls get a draining error. */
  startDraining(): void;
  /** Resolves true once no request is in flight, false if `timeoutMs` passed first. */
  waitIdle(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

interface Session {
  transport: StreamableHTTPServerTransport;
  server: ConnectableServer;
  lastSeen: number;
}

/** Serves an agent over MCP Streamable HTTP with stateful, reused sessions. */
export async function serveHttp(options: HttpAgentServerOptions): Promise<HttpAgentServer> {
  const logger = (options.logger ?? silentLogger).child({ component: "http" });
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const sessions = new Map<string, Session>();
  let inFlight = 0;
  let callsRunning = 0;
  let overloaded = 0;
  let unauthorized = 0;
  let evicted = 0;
  const maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
  const maxCalls = options.maxConcurrentCalls ?? Number.POSITIVE_INFINITY;
  let draining = false;
  const idleWaiters = new Set<() => void>();

  const finished = () => {
    inFlight--;
    if (inFlight === 0) for (const wake of idleWaiters) wake();
  };

  const allowed = new Set([...LOOPBACK_NAMES, options.host, ...(options.allowedHosts ?? [])].map((h) => h.toLowerCase()));

  async function handleMcp(req: IncomingMessage, res: ServerResponse, factory: () => ConnectableServer): Promise<void> {
    const refused = foreignHost(req, allowed);
    if (refused) {
      req.resume();
      return sendJsonRpcError(
        res,
        403,
        -32_000,
        `Forbidden: ${refused} is not an allowed host (DNS-rebinding protection). Allowed: ${[...allowed].join(", ")}; add one with MESH_ALLOWED_HOSTS.`,
      );
    }
    const auth = options.verifier?.check(req.headers.authorization) ?? "ok";
    if (auth !== "ok") {
      req.resume();
      unauthorized++;
      res.setHeader("WWW-Authenticate", challenge(auth));
      return sendJsonRpcError(
        res,
        401,
        -32_001,
        auth === "missing"
          ? "Unauthorized: this endpoint requires a bearer token (Authorization: Bearer <token>; toolmesh callers send MESH_TOKEN)."
          : "Unauthorized: the bearer token is not accepted here.",
      );
    }
    const sid = header(req, "mcp-session-id");
    if (req.method === "POST") {
      inFlight++;
      res.once("close", finished);
      const body = await readJsonBody(req, res, maxBody);
      if (body === undefined) return;
      if (draining && carriesNewWork(body)) {
        res.setHeader("Retry-After", "1");
        return sendJsonRpcError(
          res,
          503,
          DRAINING_ERROR_CODE,
          "This agent instance is draining (shutting down) and takes no new calls; call another instance.",
        );
      }
      const calls = toolCalls(body);
      if (calls > 0) {
        if (callsRunning + calls > maxCalls) {
          overloaded++;
          // Refused before it started, so the caller may safely send it to another replica.
          res.setHeader("Retry-After", "1");
          return sendJsonRpcError(
            res,
            503,
            OVERLOADED_ERROR_CODE,
            `Overloaded: this instance is running ${callsRunning} tool calls, its limit (${maxCalls}); the call was not started. Call another instance or retry shortly.`,
          );
        }
        callsRunning += calls;
        res.once("close", () => (callsRunning -= calls));
      }
      if (sid)
        return withSession(sid, res, (s) =>
          options.fastPath?.(s.server, body, res) ? Promise.resolve() : s.transport.handleRequest(req, res, body),
        );
      if (!isInitializeRequest(body)) {
        return sendJsonRpcError(
          res,
          400,
          -32_000,
          "Bad Request: no Mcp-Session-Id header; start a session with an initialize request first.",
        );
      }
      return startSession(req, res, body, factory);
    }
    if (req.method === "GET" || req.method === "DELETE") {
      if (!sid) return sendJsonRpcError(res, 400, -32_000, `Bad Request: ${req.method} needs an Mcp-Session-Id header.`);
      return withSession(sid, res, (s) => s.transport.handleRequest(req, res));
    }
    res.setHeader("Allow", "GET, POST, DELETE");
    sendJsonRpcError(res, 405, -32_000, `Method ${req.method} is not allowed on ${options.mcpPath}; use POST, GET or DELETE.`);
  }

  async function withSession(sid: string, res: ServerResponse, fn: (s: Session) => Promise<void>): Promise<void> {
    const session = sessions.get(sid);
    if (!session) {
      return sendJsonRpcError(
        res,
        404,
        -32_001,
        "Session not found: it expired or this instance restarted. Start a new session with initialize.",
      );
    }
    session.lastSeen = Date.now();
    await fn(session);
  }

  async function startSession(req: IncomingMessage, res: ServerResponse, body: unknown, factory: () => ConnectableServer): Promise<void> {
    if (sessions.size >= maxSessions) {
      let oldest: [string, Session] | undefined;
      for (const entry of sessions) if (!oldest || entry[1].lastSeen < oldest[1].lastSeen) oldest = entry;
      if (oldest) {
        sessions.delete(oldest[0]);
        evicted++;
        void oldest[1].transport.close();
        void oldest[1].server.close();
        logger.warn(
          { session: oldest[0], idleMs: Date.now() - oldest[1].lastSeen, maxSessions },
          "session limit reached: evicted the least recently used",
        );
      }
    }
    const server = factory();
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, server, lastSeen: Date.now() });
        logger.debug({ session: id, sessions: sessions.size }, "session opened");
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
        logger.debug({ session: id }, "session closed by client");
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    options.onConnect?.(transport);
    await transport.handleRequest(req, res, body);
  }

  // Slow clients (slowloris): headers must arrive within 10 s and a whole request within
  // 30 s, checked every second; responses (SSE streams) are not limited.
  const httpServer: Server = createServer(
    {
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      const factory = path === options.mcpPath ? options.createServer : options.routes?.(path);
      const work =
        path === "/healthz"
          ? Promise.resolve(health(res))
          : factory
            ? handleMcp(req, res, factory)
            : Promise.resolve(
                sendJson(res, 404, {
                  error: `No endpoint at ${path}. The MCP endpoint is ${options.mcpPath}${options.routesHint ? ` (${options.routesHint})` : ""}; health is /healthz.`,
                }),
              );
      work.catch((e: unknown) => {
        logger.error({ err: e, path, method: req.method }, "request failed");
        if (!res.headersSent) sendJsonRpcError(res, 500, -32_603, "Internal error while handling the request.");
        else res.end();
      });
    },
  );

  function health(res: ServerResponse): void {
    sendJson(res, draining ? 503 : 200, {
      status: draining ? "draining" : "passing",
      inFlight,
      calls: callsRunning,
      overloaded,
      unauthorized,
      sessions: sessions.size,
      evicted,
      ...options.healthInfo?.(),
    });
  }

  const sweep = setInterval(
    () => {
      const cutoff = Date.now() - options.sessionIdleMs;
      for (const [id, s] of sessions) {
        if (s.lastSeen < cutoff) {
          sessions.delete(id);
          void s.transport.close();
          void s.server.close();
          logger.info({ session: id }, "closed idle session");
        }
      }
    },
    Math.min(options.sessionIdleMs / 2, 60_000),
  );
  sweep.unref();

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", (e) => reject(listenError(e as NodeJS.ErrnoException, options.host, options.port)));
    httpServer.listen(options.port, options.host, () => {
      httpServer.off("error", reject);
      resolve();
    });
  });
  const port = (httpServer.address() as AddressInfo).port;
  const hostInUrl = options.host.includes(":") ? `[${options.host}]` : options.host;

  return {
    url: `http://${hostInUrl}:${port}${options.mcpPath}`,
    port,
    get inFlight() {
      return inFlight;
    },
    get sessionCount() {
      return sessions.size;
    },
    get draining() {
      return draining;
    },
    startDraining() {
      draining = true;
    },
    waitIdle(timeoutMs) {
      if (inFlight === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (idle: boolean) => {
          clearTimeout(timer);
          idleWaiters.delete(wake);
          resolve(idle);
        };
        const wake = () => done(true);
        const timer = setTimeout(() => done(false), timeoutMs);
        idleWaiters.add(wake);
      });
    },
    async close() {
      clearInterval(sweep);
      const all = [...sessions.values()];
      sessions.clear();
      await Promise.allSettled(all.flatMap((s) => [s.transport.close(), s.server.close()]));
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
    },
  };
}

/** Why the server could not listen, in words that say what to change (a configuration error). */
function listenError(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const why: Record<string, string> = {
    EADDRINUSE: `port ${port} on ${host} is already in use by another process; choose another port (or 0 for any free one)`,
    EADDRNOTAVAIL: `${host} is not an address of this machine; bind to one of its own addresses (e.g. 127.0.0.1, or 0.0.0.0 for all)`,
    EACCES: `port ${port} needs privileges this process does not have; use a port above 1023`,
    ENOTFOUND: `the host name "${host}" does not resolve; use an address or a name this machine knows`,
    EAI_AGAIN: `the host name "${host}" could not be resolved right now; use an address`,
  };
  const reason = e.code ? why[e.code] : undefined;
  return reason
    ? new MeshError("CONFIG_INVALID", `Cannot listen on ${host}:${port}: ${reason}.`, { cause: e })
    : new MeshError("CONFIG_INVALID", `Cannot listen on ${host}:${port}: ${e.message}.`, { cause: e });
}

/** Names that always reach this machine only. */
const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];

/** The offending "Host x" / "Origin y", or undefined when both name allowed hosts. */
function foreignHost(req: IncomingMessage, allowed: ReadonlySet<string>): string | undefined {
  const host = header(req, "host");
  if (host !== undefined) {
    const name = hostnameOf(`http://${host}`);
    if (!name || !allowed.has(name)) return `Host "${host}"`;
  }
  const origin = header(req, "origin");
  if (origin !== undefined && origin !== "null") {
    const name = hostnameOf(origin);
    if (!name || !allowed.has(name)) return `Origin "${origin}"`;
  }
  return undefined;
}

function hostnameOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  } catch {
    return undefined;
  }
}

/** A request that starts work: a new session or a tool call (single or in a batch). */
/** How many tools/call requests a POST body carries. */
function toolCalls(body: unknown): number {
  const messages = Array.isArray(body) ? body : [body];
  return messages.filter((m) => (m as { method?: unknown; id?: unknown } | null)?.method === "tools/call").length;
}

function carriesNewWork(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => {
    const method = (m as { method?: unknown } | null)?.method;
    return method === "tools/call" || method === "initialize";
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads and parses a JSON body; answers the request itself (and returns undefined) on bad input. */
async function readJsonBody(req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > maxBytes) {
    req.resume();
    sendJsonRpcError(res, 413, -32_600, `Request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes.`);
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      sendJsonRpcError(res, 413, -32_600, `Request body exceeds the limit of ${maxBytes} bytes.`);
      req.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    sendJsonRpcError(res, 400, -32_700, `Parse error: the body is not valid JSON (${(e as Error).message}).`);
    return undefined;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function sendJsonRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { jsonrpc: "2.0", error: { code, message }, id: null });
}
