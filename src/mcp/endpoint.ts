import type { IncomingMessage, ServerResponse } from "node:http";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { classifyInboundRequest, createMcpHandler, type McpServer, type Server, type ServerNotifier } from "@modelcontextprotocol/server";
import { silentLogger, type Logger } from "../logger.ts";
import { rawArgumentsOf } from "../http/rawBody.ts";
import { answerFast, envelopeCapabilities, plainToolCall, splitEnvelope, type FastToolCalls } from "./fastCalls.ts";
import { LegacySessions, type LegacySessionsOptions } from "./legacySessions.ts";
import { requestRefusal, taskNameHeader } from "./requestCheck.ts";
import { sendRefusal } from "../http/responses.ts";

/** A server instance for one request (2026-07-28) or one session (2025-11-25). */
export type ServerFactory = (era: "modern" | "legacy") => McpServer | Server | Promise<McpServer | Server>;

export interface McpEndpointOptions extends Omit<LegacySessionsOptions, "createServer"> {
  createServer: ServerFactory;
  /**
   * A 2026-07-28 client opened a `subscriptions/listen` stream naming these resource URIs;
   * `closed` resolves when the stream ends (the gateway subscribes upstream meanwhile).
   */
  onListen?: (resourceUris: readonly string[], closed: Promise<void>) => void;
  /** Largest request body (the HTTP layer enforces it first). */
  maxBodyBytes: number;
  logger?: Logger;
}

/**
 * One MCP URL serving both protocol eras. A request carrying the 2026-07-28 per-request
 * envelope (`_meta["io.modelcontextprotocol/protocolVersion"]`) is served by the SDK's
 * per-request handler (no session; a fresh server instance from the factory; the SDK checks
 * the envelope and the Mcp-Method/Mcp-Name headers against the body), or, for a plain
 * tools/call, by the fast path (fastCalls.ts); anything else is a 2025-era request, served
 * on a Streamable HTTP session (LegacySessions).
 */
export class McpEndpoint {
  readonly legacy: LegacySessions;
  /** Publishes list changes and resource updates to open 2026-07-28 `subscriptions/listen` streams. */
  readonly notify: ServerNotifier;
  private readonly modern: (req: IncomingMessage, res: ServerResponse, body?: unknown) => Promise<void>;
  private readonly handler: ReturnType<typeof createMcpHandler>;
  private readonly onListen: McpEndpointOptions["onListen"];
  private readonly fast: FastToolCalls | undefined;
  private readonly logger: Logger;

  constructor(options: McpEndpointOptions) {
    const logger = (options.logger ?? silentLogger).child({ component: "mcp-endpoint" });
    this.logger = logger;
    this.onListen = options.onListen;
    this.fast = options.fastToolCalls;
    this.legacy = new LegacySessions({ ...options, createServer: () => options.createServer("legacy"), logger: options.logger });
    this.handler = createMcpHandler(() => options.createServer("modern"), {
      legacy: "reject",
      maxRequestBodySize: options.maxBodyBytes,
      onerror: (e) => logger.debug({ err: e.message }, "2026-07-28 request refused or failed"),
    });
    this.notify = this.handler.notify;
    this.modern = toNodeHandler(this.handler, {
      maxRequestBodySize: options.maxBodyBytes,
      onerror: (e) => logger.warn({ err: e.message }, "2026-07-28 request could not be served"),
    }) as (req: IncomingMessage, res: ServerResponse, body?: unknown) => Promise<void>;
  }

  /**
   * Serves one request whose body (POST) has been read and parsed already. The SDK's own
   * classification decides the era (body first, then headers), so the branch never
   * disagrees with what the modern handler would accept; its rejections are the modern
   * handler's to answer.
   */
  handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const inbound = classifyInboundRequest({
      httpMethod: req.method ?? "GET",
      protocolVersionHeader: header(req, "mcp-protocol-version"),
      mcpMethodHeader: header(req, "mcp-method"),
      body,
    });
    if (inbound.kind === "legacy") return this.legacy.handle(req, res, body);
    // One check for both 2026-07-28 paths (fast and SDK): the same requests pass, the same are refused.
    const refused = inbound.kind === "modern" ? requestRefusal(req, body, "modern") : undefined;
    if (refused) return Promise.resolve(sendRefusal(res, refused));
    if (inbound.kind === "modern") taskNameHeader(req, body);
    if (inbound.kind === "modern" && inbound.messageKind === "request" && this.fast) {
      const plain = plainToolCall(req, body, "modern");
      if (plain && this.fast.accepts(plain.name)) {
        const { id, ...params } = plain;
        const { envelope, meta } = splitEnvelope(params._meta);
        return answerFast(
          res,
          { id, params: { ...params, _meta: meta }, envelope, rawArguments: () => rawArgumentsOf(req) },
          {
            era: "modern",
            fast: this.fast,
            capabilities: envelopeCapabilities(envelope),
            logger: this.logger,
          },
        );
      }
    }
    const uris = inbound.kind === "modern" ? listenedResources(body) : [];
    if (uris.length > 0 && this.onListen) this.onListen(uris, new Promise((resolve) => res.once("close", () => resolve())));
    return this.modern(req, res, body);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.handler.close(), this.legacy.close()]);
  }
}

/** The resource URIs a `subscriptions/listen` request names (none for any other request). */
function listenedResources(body: unknown): string[] {
  const b = body as { method?: unknown; params?: { notifications?: { resourceSubscriptions?: unknown } } } | null;
  if (!b || b.method !== "subscriptions/listen") return [];
  const uris = b.params?.notifications?.resourceSubscriptions;
  return Array.isArray(uris) ? uris.filter((u): u is string => typeof u === "string").slice(0, 1_000) : [];
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
