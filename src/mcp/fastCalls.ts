import type { IncomingMessage, ServerResponse } from "node:http";
import {
  isInputRequiredResult,
  ProtocolError,
  ProtocolErrorCode,
  type CallToolResult,
  type ClientCapabilities,
  type Implementation,
  type InputRequiredResult,
  type LoggingLevel,
  type McpServer,
  type Server,
  type ServerContext,
} from "@modelcontextprotocol/server";
import type { Logger } from "../logger.ts";
import { rawResultHead } from "./rawResults.ts";
import {
  CLIENT_CAPABILITIES_META,
  LOG_LEVEL_META,
  PROTOCOL_VERSION_META,
  RESERVED_META_PREFIX,
  SERVER_INFO_META,
} from "../protocol/keys.ts";

/**
 * Tool calls answered without the SDK's per-message machinery: the hot path of every hop in
 * the mesh. The answer is one JSON response, or an SSE stream from the moment the handler
 * sends a notification (progress, a log message at the level the call asked for), as the
 * SDK answers. Taken by a `tools/call` that is one request, with no task, and on 2026-07-28
 * standard headers that match the body exactly. Everything else (and any request the
 * endpoint is unsure of) takes the SDK's path, which builds a server per 2026-07-28 request.
 */
export interface FastToolCalls {
  /** The serverInfo every 2026-07-28 result carries in `_meta`. */
  serverInfo: Implementation;
  /**
   * Whether a call of `tool` may take the fast path; `session` is the server of the
   * 2025-11-25 session it came on (undefined on 2026-07-28).
   */
  accepts(tool: string, session?: McpServer | Server): boolean;
  /** Runs the call. `params._meta` comes without the reserved envelope keys (2026-07-28), which come as `envelope`. */
  call(request: FastCall, signal: AbortSignal): Promise<CallToolResult | InputRequiredResult>;
}

export type FastCallParams = { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> };

export interface FastCall {
  id: string | number;
  params: FastCallParams & { requestState?: unknown; inputResponses?: Record<string, unknown> };
  envelope: Record<string, unknown>;
  /** The 2025-11-25 session's server, if the call came on one. */
  session?: McpServer | Server;
  /** The call's `arguments` exactly as the client sent them (a proxy forwards them byte for byte). */
  rawArguments?: () => string | undefined;
  /** Sends a notification related to the call (progress, log messages) on its response stream. */
  notify?: (notification: { method: string; params?: Record<string, unknown> }) => Promise<void>;
}

/** MissingRequiredClientCapability: the one handler error the spec answers with HTTP 400. */
const MISSING_CAPABILITY = -32_021;
/** Log levels, least severe first. */
const LOG_LEVELS: readonly LoggingLevel[] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
/** Tool names that travel verbatim in the Mcp-Name header (others are encoded: the SDK checks those). */
const VERBATIM_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

type Message = { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };

/** The tools/call a body carries, if it is one request that may take the fast path (both eras). */
export function plainToolCall(
  req: IncomingMessage,
  body: unknown,
  era: "modern" | "legacy",
): (FastCallParams & { id: string | number }) | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const m = body as Message;
  if (m.method !== "tools/call" || (typeof m.id !== "string" && typeof m.id !== "number")) return undefined;
  const params = m.params as Record<string, unknown> | undefined;
  const name = params?.["name"];
  if (typeof name !== "string" || !VERBATIM_NAME.test(name)) return undefined;
  if (params!["arguments"] !== undefined && (typeof params!["arguments"] !== "object" || params!["arguments"] === null)) return undefined;
  const meta = (params!["_meta"] ?? {}) as Record<string, unknown>;
  if (typeof meta !== "object" || meta === null) return undefined;
  if ("task" in params!) return undefined;
  // A continuation the SDK would refuse (a non-string requestState, odd inputResponses) is the SDK's to refuse.
  const state = params!["requestState"];
  const responses = params!["inputResponses"];
  if (state !== undefined && typeof state !== "string") return undefined;
  if (responses !== undefined && (typeof responses !== "object" || responses === null || Array.isArray(responses))) return undefined;
  // 2025 sessions: a log level or a continuation does not exist there; answers stay the SDK's.
  if (era === "legacy" && (meta[LOG_LEVEL_META] !== undefined || "requestState" in params! || "inputResponses" in params!))
    return undefined;
  // Content-Type, Accept (JSON and SSE both) and the revision were checked already, for both paths alike (requestCheck.ts).
  if (era === "modern") {
    // Standard headers present and matching the body (the SDK's path answers any other case).
    if (header(req, "mcp-method") !== "tools/call" || header(req, "mcp-name") !== name) return undefined;
    if (header(req, "mcp-protocol-version") !== meta[PROTOCOL_VERSION_META]) return undefined;
  }
  return { id: m.id, ...(params as FastCallParams) };
}

/**
 * Runs a fast call and answers it as one JSON response, shaped as the SDK shapes it for the
 * era: 2026-07-28 results carry `resultType` and the server's identity in `_meta`. The
 * client going away aborts the handler (a cancellation, on 2026-07-28).
 */
export async function answerFast(res: ServerResponse, call: FastCall, o: AnswerOptions): Promise<void> {
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort(new Error("the client closed the request"));
  };
  res.once("close", onClose);
  const signal = o.signal ? AbortSignal.any([abort.signal, o.signal]) : abort.signal;
  const stream = new AnswerStream(res);
  let answer: Answer;
  try {
    answer = resultAnswer(call.id, await o.fast.call({ ...call, notify: (n) => stream.notify(n) }, signal), o);
  } catch (e) {
    answer = errorAnswer(call.id, e, o);
  } finally {
    res.off("close", onClose);
  }
  if (res.destroyed || signal.aborted) return; // cancelled: the client expects no answer
  stream.end(answer);
}

/** How a fast call is answered: its era, who runs it, what its client can answer, and an outer signal. */
export interface AnswerOptions {
  era: "modern" | "legacy";
  fast: FastToolCalls;
  capabilities: ClientCapabilities | undefined;
  logger: Logger;
  signal?: AbortSignal;
}

/** A JSON-RPC answer and the HTTP status and headers it goes with (when it is not streamed). */
interface Answer {
  message: Record<string, unknown>;
  /** The message's JSON, when it was written from an agent's own text (rawResults.ts) rather than serialised. */
  raw?: string;
  status: number;
  headers: Record<string, string>;
}

/**
 * A call's response: one JSON body, or an SSE stream from the call's first notification on
 * (as the SDK's is), the answer its last event.
 */
class AnswerStream {
  private streaming = false;
  private readonly res: ServerResponse;

  constructor(res: ServerResponse) {
    this.res = res;
  }

  /** Sends a notification related to the call (progress, a log message) as an SSE event. */
  async notify(n: { method: string; params?: Record<string, unknown> }): Promise<void> {
    if (!this.res.destroyed && !this.res.writableEnded) this.event({ jsonrpc: "2.0", ...n });
  }

  /** Sends the answer and ends the response. */
  end(answer: Answer): void {
    const body = answer.raw ?? JSON.stringify(answer.message);
    if (this.streaming) {
      this.res.write(`event: message\ndata: ${body}\n\n`);
      this.res.end();
      return;
    }
    this.res
      .writeHead(answer.status, { ...answer.headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) })
      .end(body);
  }

  private event(message: Record<string, unknown>): void {
    if (!this.streaming) {
      this.res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache, no-transform", connection: "keep-alive" });
      this.streaming = true;
    }
    this.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  }
}

/** The answer to a call its handler returned a result for (an input request its client cannot answer is an error). */
function resultAnswer(id: string | number, result: CallToolResult | InputRequiredResult, o: AnswerOptions): Answer {
  const missing = isInputRequiredResult(result) ? missingCapability(result, o.capabilities ?? {}) : undefined;
  // The spec's status for a missing capability; a 2025 session answers in band.
  if (missing) return { message: { jsonrpc: "2.0", id, error: missing }, status: o.era === "modern" ? 400 : 200, headers: {} };
  if (isInputRequiredResult(result) && o.era === "legacy") {
    // Only a session whose client can answer input requests reaches a handler that asks (accepts).
    const error = { code: ProtocolErrorCode.InternalError, message: "The tool asked for input on a plain call." };
    return { message: { jsonrpc: "2.0", id, error }, status: 200, headers: {} };
  }
  const raw = o.era === "modern" && !("_meta" in result) ? rawResultHead(result) : undefined;
  if (raw !== undefined) return { message: {}, raw: rawAnswer(id, raw, o.fast.serverInfo), status: 200, headers: {} };
  const content = isInputRequiredResult(result) || result.content !== undefined ? {} : { content: [] };
  const shaped =
    o.era === "modern"
      ? {
          ...result,
          ...content,
          resultType: (result as { resultType?: string }).resultType ?? "complete",
          _meta: { ...result._meta, [SERVER_INFO_META]: o.fast.serverInfo },
        }
      : legacyResult({ ...result, ...content });
  return { message: { result: shaped, jsonrpc: "2.0", id }, status: 200, headers: {} };
}

/**
 * A complete result's answer written from the agent's own text: its members as the agent
 * wrote them, this endpoint's serverInfo, the client's request id. Shaped as resultAnswer
 * shapes it (members, then `resultType` among them, then `_meta`).
 */
function rawAnswer(id: string | number, head: string, serverInfo: Implementation): string {
  return `{"result":${head},"_meta":{${JSON.stringify(SERVER_INFO_META)}:${JSON.stringify(serverInfo)}}},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`;
}

/** The answer to a call whose handler threw: as the SDK answers a handler's error (its numeric code, message and data, else an internal error). */
function errorAnswer(id: string | number, e: unknown, o: AnswerOptions): Answer {
  const thrown = (e ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
  const code = Number.isSafeInteger(thrown.code) ? (thrown.code as number) : ProtocolErrorCode.InternalError;
  if (code === ProtocolErrorCode.InternalError) o.logger.warn({ err: String(e) }, "a tool call failed unexpectedly");
  const headers: Record<string, string> = {};
  // In-band (HTTP 200) like every handler error, but a missing client capability: the spec makes that 400.
  let status = code === MISSING_CAPABILITY && o.era === "modern" ? 400 : 200;
  // A refusal that says when to come back (a quota) says it in HTTP too, for clients and proxies that read it.
  const retryAfterMs = (thrown.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  if (typeof retryAfterMs === "number" && retryAfterMs > 0) headers["retry-after"] = String(Math.ceil(retryAfterMs / 1_000));
  // A refusal with a scope challenge (the gateway's step-up): RFC 6750's 403, which OAuth clients act on.
  const challenge = (thrown.data as { wwwAuthenticate?: unknown } | undefined)?.wwwAuthenticate;
  if (typeof challenge === "string" && o.era === "modern") {
    status = 403;
    headers["www-authenticate"] = challenge;
  }
  const error = {
    code,
    message: typeof thrown.message === "string" ? thrown.message : "Internal error",
    ...(thrown.data !== undefined ? { data: thrown.data } : {}),
  };
  return { message: { jsonrpc: "2.0", id, error }, status, headers };
}

/** A result as a 2025-11-25 session carries it: without the 2026-07-28 `resultType` (an agent's, passed on by the gateway). */
function legacyResult(result: Record<string, unknown>): Record<string, unknown> {
  if (!("resultType" in result)) return result;
  const { resultType: _dropped, ...rest } = result;
  return rest;
}

/** Splits a 2026-07-28 request's `_meta` into the reserved envelope and the rest. */
export function splitEnvelope(meta: Record<string, unknown> | undefined): {
  envelope: Record<string, unknown>;
  meta: Record<string, unknown>;
} {
  const envelope: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta ?? {})) (key.startsWith(RESERVED_META_PREFIX) ? envelope : rest)[key] = value;
  return { envelope, meta: rest };
}

/** Whether the client of a 2025-11-25 session can answer server requests (sampling, elicitation, roots). */
export function answersServerRequests(session: McpServer | Server): boolean {
  const caps = ("server" in session ? session.server : session).getClientCapabilities() ?? {};
  return Boolean(caps.sampling || caps.elicitation || caps.roots);
}

/** The client capabilities a 2026-07-28 envelope declares. */
export function envelopeCapabilities(envelope: Record<string, unknown>): ClientCapabilities {
  return (envelope[CLIENT_CAPABILITIES_META] ?? {}) as ClientCapabilities;
}

/**
 * The request context a handler sees on the fast path: the request's envelope, metadata,
 * continuation (inputResponses, requestState) and cancellation; progress and log messages go
 * on the call's own response stream (a 2025 session's log messages at its session level).
 * Server requests do not exist on 2026-07-28, and a 2025 session whose client could answer
 * them never takes the fast path.
 */
export function fastRequestContext(call: FastCall, signal: AbortSignal): ServerContext {
  const unavailable = () =>
    Promise.reject(
      new ProtocolError(ProtocolErrorCode.InternalError, "No server requests on this call: return inputRequired(...) instead."),
    );
  const session = call.session;
  const notify = call.notify ?? (async () => undefined);
  // 2025 session: at the session's level, as the SDK logs there. 2026-07-28: only at or above
  // the level the call asked for, on its own response stream.
  const wanted = call.envelope[LOG_LEVEL_META] as LoggingLevel | undefined;
  const log = session
    ? (level: LoggingLevel, data: unknown, logger?: string) =>
        (("server" in session ? session.server : session) as Server)
          .sendLoggingMessage({ level, data, ...(logger ? { logger } : {}) })
          .catch(() => undefined)
    : async (level: LoggingLevel, data: unknown, logger?: string) => {
        if (wanted === undefined || LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(wanted)) return;
        await notify({ method: "notifications/message", params: { level, data, ...(logger ? { logger } : {}) } });
      };
  return {
    mcpReq: {
      id: call.id,
      method: "tools/call",
      _meta: call.params._meta ?? {},
      envelope: call.envelope,
      ...(call.params.inputResponses ? { inputResponses: call.params.inputResponses } : {}),
      requestState: () => call.params.requestState,
      signal,
      send: unavailable,
      notify,
      log,
      elicitInput: unavailable,
      requestSampling: unavailable,
    },
  } as unknown as ServerContext;
}

/** The -32021 error for an input request the client's capabilities do not cover, if any (as the SDK checks it). */
function missingCapability(result: InputRequiredResult, caps: ClientCapabilities): Record<string, unknown> | undefined {
  const declared = caps as Record<string, Record<string, unknown> | undefined>;
  for (const [key, entry] of Object.entries(result.inputRequests ?? {})) {
    const method = (entry as { method?: string }).method;
    const params = ((entry as { params?: Record<string, unknown> }).params ?? {}) as Record<string, unknown>;
    let required: Record<string, unknown> | undefined;
    if (method === "elicitation/create") {
      if (!declared["elicitation"]) required = { elicitation: {} };
      else if (params["mode"] === "url" && !declared["elicitation"]["url"]) required = { elicitation: { url: {} } };
    } else if (method === "sampling/createMessage") {
      if (!declared["sampling"]) required = { sampling: {} };
      else if (params["tools"] !== undefined && !declared["sampling"]["tools"]) required = { sampling: { tools: {} } };
    } else if (method === "roots/list" && !declared["roots"]) required = { roots: {} };
    if (required)
      return {
        code: MISSING_CAPABILITY,
        message: `Cannot request input '${key}' (${method}): the request's client capabilities do not declare the required capability`,
        data: { requiredCapabilities: required },
      };
  }
  return undefined;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
