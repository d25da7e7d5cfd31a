import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { NodeStreamableHTTPServerTransport } from "@modelcontextprotocol/node";
import type { McpServer, Server } from "@modelcontextprotocol/server";
import { silentLogger, type Logger } from "../logger.ts";
import { legacySessions, sessionsEvicted } from "../telemetry/metrics.ts";
import { rawArgumentsOf } from "../http/rawBody.ts";
import { SessionEventStore, SSE_RETRY_MS } from "./eventStore.ts";
import { answerFast, plainToolCall, type FastToolCalls } from "./fastCalls.ts";
import { refusedBatchMembers, type BatchRefusals } from "../http/batchAdmission.ts";
import { BATCH_REVISIONS, requestRefusal } from "./requestCheck.ts";
import { header } from "../http/request.ts";
import { sendJsonRpcError, sendRefusal } from "../http/responses.ts";

/**
 * Sessions one instance keeps for 2025-era clients (each holds a server instance): past
 * this, opening one evicts the least recently used, whose client starts a new session on
 * its next request. Bounds memory against clients that open sessions and never close them.
 * @default 512
 */
export const DEFAULT_MAX_SESSIONS = 512;
/** A 2025-era session with no request for this long is closed. @default 600000 */
export const DEFAULT_SESSION_IDLE_MS = 600_000;

export interface LegacySessionsOptions {
  /** A fresh server for one session. */
  createServer: () => McpServer | Server | Promise<McpServer | Server>;
  /** @default DEFAULT_MAX_SESSIONS */
  maxSessions?: number;
  /** @default DEFAULT_SESSION_IDLE_MS */
  idleMs?: number;
  /** Called once per session with the server that serves it (the gateway keeps its sessions' servers). */
  onOpen?: (server: McpServer | Server, sessionId: string) => void;
  onClose?: (server: McpServer | Server) => void;
  /** Plain tool calls answered without the SDK's per-message machinery (agents, the gateway), both eras. */
  fastToolCalls?: FastToolCalls;
  logger?: Logger;
}

interface Session {
  transport: NodeStreamableHTTPServerTransport;
  server: McpServer | Server;
  lastSeen: number;
  /** Fast-path calls running, by request id: a notifications/cancelled for one aborts it. */
  running: Map<string | number, AbortController>;
  /** Members of the batch being handed to the transport that admission refused: answered, not run. */
  refused: Map<string | number, BatchRefusals>;
}

/**
 * The 2025-11-25 side of an endpoint: Streamable HTTP sessions (initialize, then
 * Mcp-Session-Id on every request), one server instance each, kept in this process, closed
 * when idle and evicted least-recently-used past a cap. The 2026-07-28 side of the same URL
 * keeps nothing between requests.
 */
export class LegacySessions {
  private readonly sessions = new Map<string, Session>();
  private readonly o: LegacySessionsOptions;
  private readonly maxSessions: number;
  private readonly idleMs: number;
  private readonly logger: Logger;
  private readonly sweep: NodeJS.Timeout;
  /** Sessions closed to make room. */
  evicted = 0;

  constructor(options: LegacySessionsOptions) {
    this.o = options;
    this.maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.idleMs = options.idleMs ?? DEFAULT_SESSION_IDLE_MS;
    this.logger = (options.logger ?? silentLogger).child({ component: "legacy-sessions" });
    this.sweep = setInterval(() => this.closeIdle(), Math.min(this.idleMs / 2, 60_000));
    this.sweep.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Serves one 2025-era request: a POST of an existing session, or an initialize that opens
   * one; GET (the notification stream) and DELETE of an existing session.
   */
  async handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    // The same check on the fast path as the SDK's session transport makes on its own.
    const refused = requestRefusal(req, body, "legacy");
    if (refused) return sendRefusal(res, refused);
    const sid = header(req, "mcp-session-id");
    if (sid) return this.continueSession(req, res, body, sid);
    if (req.method !== "POST") return sendJsonRpcError(res, 400, -32_000, `Bad Request: ${req.method} needs an Mcp-Session-Id header.`);
    if (!isInitialize(body)) {
      return sendJsonRpcError(
        res,
        400,
        -32_000,
        "Bad Request: no Mcp-Session-Id header; start a session with initialize first (2025-11-25), or send the 2026-07-28 per-request envelope.",
      );
    }
    return this.open(req, res, body);
  }

  /** A request of session `sid`: 404 if it is gone, else answered on the fast path or by the session's transport. */
  private async continueSession(req: IncomingMessage, res: ServerResponse, body: unknown, sid: string): Promise<void> {
    const session = this.sessions.get(sid);
    if (!session) {
      return sendJsonRpcError(
        res,
        404,
        -32_001,
        "Session not found: it expired or this instance restarted. Start a new session with initialize.",
      );
    }
    session.lastSeen = Date.now();
    const noBatches = Array.isArray(body) ? batchProblem(session) : undefined;
    if (noBatches) return sendJsonRpcError(res, 400, -32_600, noBatches);
    const fast = this.o.fastToolCalls;
    if (fast && req.method === "POST") {
      const plain = plainToolCall(req, body, "legacy");
      if (plain && fast.accepts(plain.name, session.server)) return this.answerFast(req, res, session, plain, fast);
      cancelRunning(session, body);
    }
    const refusals = refusedBatchMembers(req);
    if (!refusals) return session.transport.handleRequest(req, res, body);
    // The members admission refused are answered by answerRefusedMembers while the transport reads this batch.
    for (const id of refusals.ids) session.refused.set(id, refusals);
    try {
      return await session.transport.handleRequest(req, res, body);
    } finally {
      for (const id of refusals.ids) if (session.refused.get(id) === refusals) session.refused.delete(id);
    }
  }

  /** An initialize: a new session (room made for it first), with a server of its own, answering it. */
  private async open(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    this.makeRoom();
    const server = await this.o.createServer();
    const refusedMembers = new Map<string | number, BatchRefusals>();
    const transport: NodeStreamableHTTPServerTransport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      // Response streams are resumable (2025-11-25 SSE polling): a priming event and a retry
      // field open each, and a client that lost one resumes it with Last-Event-ID.
      eventStore: new SessionEventStore(),
      retryInterval: SSE_RETRY_MS,
      onsessioninitialized: (id) => {
        this.sessions.set(id, { transport, server, lastSeen: Date.now(), running: new Map(), refused: refusedMembers });
        legacySessions.inc();
        this.o.onOpen?.(server, id);
        this.logger.debug({ session: id, sessions: this.sessions.size }, "session opened");
      },
      onsessionclosed: (id) => {
        this.forget(id);
        this.logger.debug({ session: id }, "session closed by client");
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) this.forget(transport.sessionId);
    };
    await server.connect(transport);
    answerRefusedMembers(transport, refusedMembers);
    await transport.handleRequest(req, res, body);
  }

  /** A plain tool call of a session, answered as one JSON response (its client accepts that for any POST). */
  private async answerFast(
    req: IncomingMessage,
    res: ServerResponse,
    session: Session,
    plain: NonNullable<ReturnType<typeof plainToolCall>>,
    fast: FastToolCalls,
  ): Promise<void> {
    const { id, ...params } = plain;
    const cancel = new AbortController();
    session.running.set(id, cancel);
    try {
      await answerFast(
        res,
        { id, params, envelope: {}, session: session.server, rawArguments: () => rawArgumentsOf(req) },
        {
          era: "legacy",
          fast,
          capabilities: serverOf(session.server).getClientCapabilities(),
          logger: this.logger,
          signal: cancel.signal,
        },
      );
    } finally {
      if (session.running.get(id) === cancel) session.running.delete(id);
    }
  }

  /** Runs `fn` on every session's server (to notify them all). */
  forEachServer(fn: (server: McpServer | Server) => void): void {
    for (const s of this.sessions.values()) fn(s.server);
  }

  /** Closes every session (shutdown). */
  async close(): Promise<void> {
    clearInterval(this.sweep);
    const all = [...this.sessions.values()];
    legacySessions.dec(all.length);
    this.sessions.clear();
    await Promise.allSettled(all.flatMap((s) => [s.transport.close(), s.server.close()]));
  }

  private forget(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    legacySessions.dec();
    this.o.onClose?.(s.server);
  }

  private end(id: string, s: Session): void {
    this.forget(id);
    void s.transport.close().catch(() => undefined);
    void s.server.close().catch(() => undefined);
  }

  private makeRoom(): void {
    if (this.sessions.size < this.maxSessions) return;
    let oldest: [string, Session] | undefined;
    for (const entry of this.sessions) if (!oldest || entry[1].lastSeen < oldest[1].lastSeen) oldest = entry;
    if (!oldest) return;
    this.evicted++;
    sessionsEvicted.inc();
    this.end(oldest[0], oldest[1]);
    this.logger.warn(
      { session: oldest[0], idleMs: Date.now() - oldest[1].lastSeen, maxSessions: this.maxSessions },
      "session limit reached: evicted the least recently used",
    );
  }

  private closeIdle(): void {
    const cutoff = Date.now() - this.idleMs;
    for (const [id, s] of this.sessions) {
      if (s.lastSeen >= cutoff) continue;
      this.end(id, s);
      this.logger.info({ session: id }, "closed idle session");
    }
  }
}

/** A notifications/cancelled for a fast-path call of the session aborts it (the SDK's transport gets it too). */
function cancelRunning(session: Session, body: unknown): void {
  if (session.running.size === 0) return;
  for (const m of Array.isArray(body) ? body : [body]) {
    const n = m as { method?: unknown; params?: { requestId?: unknown; reason?: unknown } } | null;
    if (n?.method !== "notifications/cancelled") continue;
    const id = n.params?.requestId;
    if (typeof id === "string" || typeof id === "number")
      session.running.get(id)?.abort(new Error(typeof n.params?.reason === "string" ? n.params.reason : "cancelled by the client"));
  }
}

/**
 * Between the transport and the session's server: a batch member admission refused is
 * answered on the batch's own response with its error (the error a single call gets) and
 * never reaches the server; every other message goes on as it came.
 */
function answerRefusedMembers(transport: NodeStreamableHTTPServerTransport, refused: Map<string | number, BatchRefusals>): void {
  const deliver = transport.onmessage;
  transport.onmessage = (message, extra) => {
    const id = (message as { id?: unknown }).id;
    const refusal = "method" in message && (typeof id === "string" || typeof id === "number") ? refused.get(id) : undefined;
    if (refusal && (typeof id === "string" || typeof id === "number")) {
      refused.delete(id);
      void transport.send({ jsonrpc: "2.0", id, error: { code: refusal.code, message: refusal.message } }).catch(() => undefined);
      return;
    }
    deliver?.(message, extra);
  };
}

/**
 * Why a session cannot take a JSON-RPC batch, if it cannot: batches exist in 2025-03-26 only
 * (2025-06-18 removed them); elsewhere one message per POST.
 */
function batchProblem(session: Session): string | undefined {
  const revision = serverOf(session.server).getNegotiatedProtocolVersion() ?? "unknown";
  if (BATCH_REVISIONS.includes(revision)) return undefined;
  return `Invalid request: this session speaks MCP ${revision}, which has no JSON-RPC batches (only ${BATCH_REVISIONS.join(", ")} had them); send each message in its own POST.`;
}

/** The low-level server of a session (an McpServer wraps one). */
function serverOf(server: McpServer | Server): Server {
  return "server" in server ? server.server : server;
}

function isInitialize(body: unknown): boolean {
  return typeof body === "object" && body !== null && !Array.isArray(body) && (body as { method?: unknown }).method === "initialize";
}
