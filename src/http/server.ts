import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { silentLogger, type Logger } from "../logger.ts";
import { DRAINING_ERROR_CODE, OVERLOADED_ERROR_CODE } from "../protocol/codes.ts";
import { MeshError } from "../protocol/errors.ts";
import { challenge, type TokenVerifier } from "./auth.ts";
import type { IdentityVerifier, CallerIdentity } from "./identity.ts";
import type { OAuthResourceServer } from "./oauth.ts";
import { principalOf, withPrincipal, type RequestPrincipal } from "./principal.ts";
import { exposition, METRICS_CONTENT_TYPE, overloadRefusals } from "../telemetry/metrics.ts";
/** What serves one path: an MCP endpoint, or another JSON-RPC protocol on the same server (the gateway's A2A). */
export interface HttpEndpoint {
  handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void>;
  /** GET requests this endpoint answers without a bearer token (a public description, e.g. an A2A agent card). */
  isPublic?(req: IncomingMessage): boolean;
}
import { bodyDepthProblem } from "../protocol/limits.ts";
import { refuseBatchMembers } from "./batchAdmission.ts";
import { keepRawBody } from "./rawBody.ts";
import { header, requestIdOf } from "./request.ts";
import { sendJson, sendJsonRpcError } from "./responses.ts";

/**
 * The one scope a static-token client of the gateway holds (MESH_GATEWAY_TOKEN): policies
 * name it to say what such clients may call (they are machines of the organisation's own).
 */
export const STATIC_CLIENT_ROLE = "role:static-token";

/** Largest request body accepted on an MCP endpoint. @default 4194304 (4 MiB) */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface HttpServerOptions {
  host: string;
  port: number;
  /** The MCP endpoint serving `path`, or undefined (404). */
  endpoint: (path: string) => HttpEndpoint | undefined;
  /** Says which paths serve MCP, for 404 messages, e.g. "/mcp". */
  endpointsHint: string;
  /** Bearer tokens the MCP endpoints require (401 without an accepted one). Default: open. */
  verifier?: TokenVerifier;
  /**
   * Which credential a client should send, said in the 401 for a missing token.
   * @default "toolmesh callers send the agent's credential, derived from MESH_TOKEN, or MESH_TOKEN_<AGENT>"
   */
  tokenHint?: string;
  /**
   * OAuth 2.1 access tokens accepted beside the static tokens (the gateway: MESH_OAUTH_*):
   * protected-resource metadata at /.well-known/oauth-protected-resource[/...], and 401/403
   * challenges pointing at it. A static token (verifier) is tried first.
   */
  oauth?: () => OAuthResourceServer | "starting" | undefined;
  /**
   * The gateway: each request's client becomes the identity its work is done for (signed onward
   * to agents). Agents leave it unset: their caller is an intermediary, not the user.
   */
  assertsIdentity?: boolean;
  /** An agent: how it checks the signed identities calls carry (identity.ts). */
  identityVerifier?: IdentityVerifier;
  /** Who may read /metrics, when not the same as the MCP endpoints (the gateway: its clients and the mesh's token). */
  metricsVerifier?: TokenVerifier;
  /** Tool calls run at once; more are refused with 503 OVERLOADED before they start. Default: no limit. */
  maxConcurrentCalls?: number;
  /** @default DEFAULT_MAX_BODY_BYTES */
  maxBodyBytes?: number;
  /** Longest a client may take to send its request headers. @default 10000 */
  headersTimeoutMs?: number;
  /** Longest a client may take to send a whole request. @default 30000 */
  requestTimeoutMs?: number;
  /**
   * Host names the MCP endpoints answer to (DNS-rebinding protection): a request whose Host,
   * or Origin if it sends one, names another host gets 403. Default: loopback names and the
   * bind host.
   */
  allowedHosts?: readonly string[];
  /** Extra fields for the /healthz answer (agent name, instance id, sessions...). */
  healthInfo?: () => Record<string, unknown>;
  logger?: Logger;
}

export interface HttpServer {
  /** The base URL, e.g. http://127.0.0.1:40123 */
  readonly origin: string;
  readonly port: number;
  /** MCP requests being handled (tool calls and their streamed answers, listen streams). */
  readonly inFlight: number;
  readonly draining: boolean;
  /** From now on, /healthz answers 503 and new tool calls and sessions get a draining error. */
  startDraining(): void;
  /** Resolves true once no request is in flight, false if `timeoutMs` passed first. */
  waitIdle(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The node:http layer every mesh process serves MCP with (agents and the gateway): DNS
 * rebinding protection, bearer tokens, body limits, slow-client timeouts, admission (a
 * concurrency limit answered with a fast 503 OVERLOADED), draining, and /healthz. What an
 * endpoint speaks (both MCP eras) is the McpEndpoint's business.
 */
export async function serveHttp(options: HttpServerOptions): Promise<HttpServer> {
  const logger = (options.logger ?? silentLogger).child({ component: "http" });
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxCalls = options.maxConcurrentCalls ?? Number.POSITIVE_INFINITY;
  const allowed = new Set([...LOOPBACK_NAMES, options.host, ...(options.allowedHosts ?? [])].map((h) => h.toLowerCase()));
  const counters = { inFlight: 0, calls: 0, overloaded: 0, unauthorized: 0 };
  let draining = false;
  const idleWaiters = new Set<() => void>();
  const finished = () => {
    counters.inFlight--;
    if (counters.inFlight === 0) for (const wake of idleWaiters) wake();
  };

  async function handleMcp(req: IncomingMessage, res: ServerResponse, endpoint: HttpEndpoint): Promise<void> {
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
    const who = await authenticate(req, endpoint);
    if (!who.ok) {
      req.resume();
      counters.unauthorized++;
      return sendJsonRpcError(res, who.status, -32_001, who.message, who.headers);
    }
    return withPrincipal(who.principal, () => admitAndHandle(req, res, endpoint));
  }

  /** Static tokens first (mesh members, the gateway's own clients), then OAuth access tokens where configured. */
  async function authenticate(
    req: IncomingMessage,
    endpoint: HttpEndpoint,
  ): Promise<{ ok: true; principal: RequestPrincipal } | { ok: false; status: number; message: string; headers: Record<string, string> }> {
    const header = req.headers.authorization;
    const verifier = options.identityVerifier;
    const asStatic = (): RequestPrincipal => {
      const principal = principalOf(header);
      const identity: CallerIdentity | undefined =
        options.assertsIdentity && principal !== "anonymous"
          ? { principal, kind: "token", scopes: [STATIC_CLIENT_ROLE], claims: {} }
          : undefined;
      return { principal, ...(identity ? { identity } : {}), ...(verifier ? { verifier } : {}) };
    };
    if (endpoint.isPublic?.(req)) return { ok: true, principal: asStatic() };
    const staticAuth = options.verifier?.check(header) ?? "ok";
    if (options.oauth && options.verifier?.required && staticAuth === "ok") return { ok: true, principal: asStatic() };
    const oauth = options.oauth?.();
    if (oauth === "starting")
      return {
        ok: false,
        status: 503,
        message:
          "OAuth access tokens cannot be checked yet: the gateway has not reached its authorization server's metadata; retry shortly (static tokens work).",
        headers: { "Retry-After": "1" },
      };
    if (!oauth) {
      if (staticAuth === "ok") return { ok: true, principal: asStatic() };
      return {
        ok: false,
        status: 401,
        message:
          staticAuth === "missing"
            ? `Unauthorized: this endpoint requires a bearer token (Authorization: Bearer <token>; ${options.tokenHint ?? "toolmesh callers send the agent's credential, derived from MESH_TOKEN, or MESH_TOKEN_<AGENT>"}).`
            : "Unauthorized: the bearer token is not accepted here.",
        headers: { "WWW-Authenticate": challenge(staticAuth) },
      };
    }
    const outcome = await oauth.authenticate(header);
    if (!outcome.ok) return outcome;
    return { ok: true, principal: { principal: outcome.identity.principal, identity: outcome.identity } };
  }

  async function admitAndHandle(req: IncomingMessage, res: ServerResponse, endpoint: HttpEndpoint): Promise<void> {
    counters.inFlight++;
    res.once("close", finished);
    if (req.method !== "POST") return endpoint.handle(req, res, undefined);
    const body = await readJsonBody(req, res, maxBody);
    if (body === undefined) return;
    if (draining && carriesNewWork(body)) {
      return sendJsonRpcError(
        res,
        503,
        DRAINING_ERROR_CODE,
        "This agent instance is draining (shutting down) and takes no new calls; call another instance.",
        { "Retry-After": "1" },
        requestIdOf(body),
      );
    }
    // Each tool call of a JSON-RPC batch counts as one call: those that fit run, the excess
    // is refused with the error a single call gets (in the batch's answer), before it starts.
    const calls = toolCallIds(body);
    if (calls.length > 0) {
      const admitted = Math.min(calls.length, Math.max(0, maxCalls - counters.calls));
      if (admitted < calls.length) {
        counters.overloaded++;
        overloadRefusals.inc(calls.length - admitted);
        // Refused before it started, so the caller may safely send it to another replica.
        const message = `Overloaded: this instance is running ${counters.calls + admitted} tool calls, its limit (${maxCalls}); the call was not started. Call another instance or retry shortly.`;
        if (admitted === 0) {
          if (Array.isArray(body)) return sendOverloadedBatch(res, calls, message);
          return sendJsonRpcError(res, 503, OVERLOADED_ERROR_CODE, message, { "Retry-After": "1" }, requestIdOf(body));
        }
        refuseBatchMembers(req, {
          ids: new Set(calls.slice(admitted).filter((id) => id !== null)),
          code: OVERLOADED_ERROR_CODE,
          message,
        });
      }
      counters.calls += admitted;
      res.once("close", () => (counters.calls -= admitted));
    }
    return endpoint.handle(req, res, body);
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
      const oauth = options.oauth?.();
      const wellKnown = typeof oauth === "object" && oauth.isMetadataPath(path);
      const endpoint = path === "/healthz" || path === "/metrics" || wellKnown ? undefined : options.endpoint(path);
      const work =
        path === "/healthz"
          ? Promise.resolve(health(res))
          : path === "/metrics"
            ? serveMetrics(req, res)
            : wellKnown
              ? Promise.resolve(protectedResourceMetadata(req, res, oauth))
              : endpoint
                ? handleMcp(req, res, endpoint)
                : Promise.resolve(
                    sendJson(res, 404, { error: `No endpoint at ${path}. MCP is served at ${options.endpointsHint}; health is /healthz.` }),
                  );
      work.catch((e: unknown) => {
        logger.error({ err: e, path, method: req.method }, "request failed");
        if (!res.headersSent) sendJsonRpcError(res, 500, -32_603, "Internal error while handling the request.");
        else res.end();
      });
    },
  );

  /** Prometheus metrics, behind the same token as the MCP endpoints. */
  async function serveMetrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const auth = (options.metricsVerifier ?? options.verifier)?.check(req.headers.authorization) ?? "ok";
    if (auth !== "ok") {
      counters.unauthorized++;
      res
        .writeHead(401, { "WWW-Authenticate": challenge(auth), "content-type": "text/plain" })
        .end("Unauthorized: /metrics needs the same bearer token as the MCP endpoint.\n");
      return;
    }
    const text = await exposition();
    res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE }).end(text);
  }

  /** RFC 9728 metadata: public, cacheable, readable from browsers (remote-connector clients run in them). */
  function protectedResourceMetadata(req: IncomingMessage, res: ServerResponse, oauth: OAuthResourceServer): void {
    req.resume();
    const cors = { "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, OPTIONS" };
    if (req.method === "OPTIONS") return void res.writeHead(204, cors).end();
    if (req.method !== "GET" && req.method !== "HEAD")
      return void res.writeHead(405, { ...cors, allow: "GET, OPTIONS", "content-type": "text/plain" }).end("Method not allowed.\n");
    sendJson(res, 200, oauth.metadata(), { ...cors, "cache-control": "max-age=300" });
  }

  function health(res: ServerResponse): void {
    sendJson(res, draining ? 503 : 200, {
      status: draining ? "draining" : "passing",
      inFlight: counters.inFlight,
      calls: counters.calls,
      overloaded: counters.overloaded,
      unauthorized: counters.unauthorized,
      // The process's memory, for operators watching an instance (and the benchmark).
      memory: { rssBytes: process.memoryUsage.rss(), heapUsedBytes: process.memoryUsage().heapUsed },
      ...options.healthInfo?.(),
    });
  }

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", (e) => reject(listenError(e as NodeJS.ErrnoException, options.host, options.port)));
    httpServer.listen(options.port, options.host, () => {
      httpServer.removeAllListeners("error");
      httpServer.on("error", (e) => logger.error({ err: e }, "HTTP server error"));
      resolve();
    });
  });
  const port = (httpServer.address() as AddressInfo).port;
  const hostInUrl = options.host.includes(":") ? `[${options.host}]` : options.host;

  return {
    origin: `http://${hostInUrl}:${port}`,
    port,
    get inFlight() {
      return counters.inFlight;
    },
    get draining() {
      return draining;
    },
    startDraining() {
      draining = true;
    },
    waitIdle(timeoutMs) {
      if (counters.inFlight === 0) return Promise.resolve(true);
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
  const reason = (e.code ? why[e.code] : undefined) ?? e.message;
  return new MeshError("CONFIG_INVALID", `Cannot listen on ${host}:${port}: ${reason}.`, { cause: e });
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

function isToolCall(body: unknown): boolean {
  return (body as { method?: unknown } | null)?.method === "tools/call";
}

/**
 * The tool calls a body carries, by id, in order: one request (counted even without an id,
 * as always), or the requests of a JSON-RPC batch (a member without an id is a notification,
 * which runs nothing; duplicate ids count once, as the batch's answer cannot tell them apart).
 */
function toolCallIds(body: unknown): (string | number | null)[] {
  if (!Array.isArray(body)) return isToolCall(body) ? [requestIdOf(body)] : [];
  const ids = new Set<string | number>();
  for (const m of body) {
    const id = requestIdOf(m);
    if (isToolCall(m) && id !== null) ids.add(id);
  }
  return [...ids];
}

/** A batch none of whose tool calls fit: each gets the error it would get alone (HTTP 503), nothing started. */
function sendOverloadedBatch(res: ServerResponse, ids: (string | number | null)[], message: string): void {
  const answers = ids.map((id) => ({ jsonrpc: "2.0", error: { code: OVERLOADED_ERROR_CODE, message }, id }));
  sendJson(res, 503, answers, { "Retry-After": "1" });
}

/** A request that starts work: a tool call, or a 2025-era session (alone or in a batch). */
function carriesNewWork(body: unknown): boolean {
  return (Array.isArray(body) ? body : [body]).some((m) => {
    const method = (m as { method?: unknown } | null)?.method;
    return method === "tools/call" || method === "initialize";
  });
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
  // Before parsing and before anything walks the value: hostile nesting never reaches a recursive step.
  const tooDeep = bodyDepthProblem(text);
  if (tooDeep) {
    sendJsonRpcError(res, 400, -32_600, `Invalid request: ${tooDeep}.`);
    return undefined;
  }
  try {
    const body = JSON.parse(text) as unknown;
    keepRawBody(req, text);
    return body;
  } catch (e) {
    sendJsonRpcError(res, 400, -32_700, `Parse error: the body is not valid JSON (${(e as Error).message}).`);
    return undefined;
  }
}
