import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { silentLogger, type Logger } from "../logger.ts";
import { MeshError } from "../protocol/errors.ts";
import { exposition, METRICS_CONTENT_TYPE } from "../telemetry/metrics.ts";
import { CallAdmission } from "./admission.ts";
import { challenge, type TokenVerifier } from "./auth.ts";
import { authenticate, type RequestAuthOptions } from "./authentication.ts";
import { allowedHosts, foreignHost } from "./hostCheck.ts";
import { InFlightRequests } from "./inFlight.ts";
import { readJsonBody } from "./jsonBody.ts";
import type { OAuthResourceServer } from "./oauth.ts";
import { withPrincipal } from "./principal.ts";
import { sendJson, sendJsonRpcError } from "./responses.ts";

/** What serves one path: an MCP endpoint, or another JSON-RPC protocol on the same server (the gateway's A2A). */
export interface HttpEndpoint {
  handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void>;
  /** GET requests this endpoint answers without a bearer token (a public description, e.g. an A2A agent card). */
  isPublic?(req: IncomingMessage): boolean;
}

/** Largest request body accepted on an MCP endpoint. @default 4194304 (4 MiB) */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** A server's settings; who may send requests is in RequestAuthOptions (authentication.ts). */
export interface HttpServerOptions extends RequestAuthOptions {
  host: string;
  port: number;
  /** The MCP endpoint serving `path`, or undefined (404). */
  endpoint: (path: string) => HttpEndpoint | undefined;
  /** Says which paths serve MCP, for 404 messages, e.g. "/mcp". */
  endpointsHint: string;
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
 * rebinding protection, bearer tokens, body limits, slow-client timeouts, draining, /healthz
 * and /metrics. Above it, the admission of JSON-RPC work (admission.ts: a concurrency limit
 * answered with a fast 503 OVERLOADED, no new work while draining); what an endpoint speaks
 * (both MCP eras) is the McpEndpoint's business.
 */
export async function serveHttp(options: HttpServerOptions): Promise<HttpServer> {
  const logger = (options.logger ?? silentLogger).child({ component: "http" });
  const routes = new HttpRoutes(options, logger);
  // Slow clients (slowloris): headers must arrive within 10 s and a whole request within
  // 30 s, checked every second; responses (SSE streams) are not limited.
  const httpServer: Server = createServer(
    {
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => routes.serve(req, res),
  );
  await listen(httpServer, options.host, options.port, logger);
  const port = (httpServer.address() as AddressInfo).port;
  const hostInUrl = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    origin: `http://${hostInUrl}:${port}`,
    port,
    get inFlight() {
      return routes.inFlight.size;
    },
    get draining() {
      return routes.admission.draining;
    },
    startDraining() {
      routes.admission.draining = true;
    },
    waitIdle: (timeoutMs) => routes.inFlight.waitIdle(timeoutMs),
    async close() {
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
    },
  };
}

/**
 * One server's requests: the route each takes (/healthz, /metrics, the OAuth metadata, an
 * endpoint, or 404), and the checks on the way to an endpoint, in order: host, authentication,
 * body, admission.
 */
class HttpRoutes {
  readonly inFlight = new InFlightRequests();
  readonly admission: CallAdmission;
  private readonly options: HttpServerOptions;
  private readonly logger: Logger;
  private readonly allowed: ReadonlySet<string>;
  private readonly maxBody: number;
  /** Requests refused for their credentials (on /healthz). */
  private unauthorized = 0;

  constructor(options: HttpServerOptions, logger: Logger) {
    this.options = options;
    this.logger = logger;
    this.allowed = allowedHosts(options.host, options.allowedHosts);
    this.maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.admission = new CallAdmission(options.maxConcurrentCalls ?? Number.POSITIVE_INFINITY);
  }

  /** Serves one request; a failure is a 500 (or the end of a started response), never an unhandled rejection. */
  serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    this.route(req, res, path).catch((e: unknown) => {
      this.logger.error({ err: e, path, method: req.method }, "request failed");
      if (!res.headersSent) sendJsonRpcError(res, 500, -32_603, "Internal error while handling the request.");
      else res.end();
    });
  }

  private route(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const oauth = this.options.oauth?.();
    const wellKnown = typeof oauth === "object" && oauth.isMetadataPath(path);
    if (path === "/healthz") return Promise.resolve(this.health(res));
    if (path === "/metrics") return this.metrics(req, res);
    if (wellKnown) return Promise.resolve(protectedResourceMetadata(req, res, oauth));
    const endpoint = this.options.endpoint(path);
    if (endpoint) return this.serveEndpoint(req, res, endpoint);
    const hint = `No endpoint at ${path}. MCP is served at ${this.options.endpointsHint}; health is /healthz.`;
    return Promise.resolve(sendJson(res, 404, { error: hint }));
  }

  /** An endpoint's request: refused for a foreign Host/Origin (403) or its credentials (401/403/503), else admitted as its sender. */
  private async serveEndpoint(req: IncomingMessage, res: ServerResponse, endpoint: HttpEndpoint): Promise<void> {
    const refused = foreignHost(req, this.allowed);
    if (refused) {
      req.resume();
      return sendJsonRpcError(
        res,
        403,
        -32_000,
        `Forbidden: ${refused} is not an allowed host (DNS-rebinding protection). Allowed: ${[...this.allowed].join(", ")}; add one with MESH_ALLOWED_HOSTS.`,
      );
    }
    const who = await authenticate(req, Boolean(endpoint.isPublic?.(req)), this.options);
    if (!who.ok) {
      req.resume();
      this.unauthorized++;
      return sendJsonRpcError(res, who.status, -32_001, who.message, who.headers);
    }
    return withPrincipal(who.principal, () => this.admitAndHandle(req, res, endpoint));
  }

  /** In flight from here until the response closes: the body read within its limit, its JSON-RPC work admitted, then the endpoint's. */
  private async admitAndHandle(req: IncomingMessage, res: ServerResponse, endpoint: HttpEndpoint): Promise<void> {
    this.inFlight.track(res);
    if (req.method !== "POST") return endpoint.handle(req, res, undefined);
    const body = await readJsonBody(req, res, this.maxBody);
    if (body === undefined) return;
    if (!this.admission.admit(req, res, body)) return;
    return endpoint.handle(req, res, body);
  }

  /** Prometheus metrics, behind the same token as the MCP endpoints. */
  private async metrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const auth = (this.options.metricsVerifier ?? this.options.verifier)?.check(req.headers.authorization) ?? "ok";
    if (auth !== "ok") {
      this.unauthorized++;
      res
        .writeHead(401, { "WWW-Authenticate": challenge(auth), "content-type": "text/plain" })
        .end("Unauthorized: /metrics needs the same bearer token as the MCP endpoint.\n");
      return;
    }
    const text = await exposition();
    res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE }).end(text);
  }

  private health(res: ServerResponse): void {
    const draining = this.admission.draining;
    sendJson(res, draining ? 503 : 200, {
      status: draining ? "draining" : "passing",
      inFlight: this.inFlight.size,
      calls: this.admission.calls,
      overloaded: this.admission.overloaded,
      unauthorized: this.unauthorized,
      // The process's memory, for operators watching an instance (and the benchmark).
      memory: { rssBytes: process.memoryUsage.rss(), heapUsedBytes: process.memoryUsage().heapUsed },
      ...this.options.healthInfo?.(),
    });
  }
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

/** Listens on host:port; failing to is a CONFIG_INVALID error saying what to change, a later server error is logged. */
function listen(httpServer: Server, host: string, port: number, logger: Logger): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    httpServer.once("error", (e) => reject(listenError(e as NodeJS.ErrnoException, host, port)));
    httpServer.listen(port, host, () => {
      httpServer.removeAllListeners("error");
      httpServer.on("error", (e) => logger.error({ err: e }, "HTTP server error"));
      resolve();
    });
  });
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
