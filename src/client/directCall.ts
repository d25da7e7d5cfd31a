import {
  ProtocolError,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  type CallToolResult,
  type ClientCapabilities,
  type InputRequiredResult,
} from "@modelcontextprotocol/client";
import { request, type Dispatcher } from "undici";
import { keepRawResult } from "../mcp/rawResults.ts";
import { dispatcher } from "./meshFetch.ts";

/** The revision direct calls speak. */
const REVISION = "2026-07-28";
/** Tool names that travel verbatim in the Mcp-Name header. */
const VERBATIM_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

export type Progress = { progress: number; total?: number; message?: string };

/** JSON text to place in a request as it is (arguments forwarded byte for byte). */
export interface RawJson {
  readonly rawJson: string;
}

export function rawJson(text: string): RawJson {
  return { rawJson: text };
}

export interface DirectCall {
  url: string;
  params: { name: string; arguments: Record<string, unknown> | RawJson; _meta?: Record<string, unknown> } & Record<string, unknown>;
  clientInfo: { name: string; version: string };
  capabilities: ClientCapabilities;
  token?: string;
  signal: AbortSignal;
  /** No answer (and no progress) for this long: a timeout; the request is abandoned and the agent sees it close. */
  idleTimeoutMs: number;
  /** The whole call, progress or not. */
  totalTimeoutMs: number;
  /** Progress notifications, asked for with a progress token; each one resets the idle timer. */
  onProgress?: (progress: Progress) => void;
  /** Called when the request has been handed to the connection (it may run from then on). */
  onSent?: () => void;
  /** Hand an input_required result back (the gateway relays it); otherwise it is an error, as on the SDK's path. */
  allowInputRequired?: boolean;
}

let nextId = 1;

/** Whether a call can go direct: a tool name that travels verbatim in the Mcp-Name header. */
export function directCallable(tool: string): boolean {
  return VERBATIM_NAME.test(tool);
}

type JsonRpcMessage = {
  id?: unknown;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
};

/**
 * One 2026-07-28 tools/call as a single HTTP request, without an SDK client: the envelope,
 * the standard headers and the body written once, the answer read as JSON or, when the
 * agent streams (progress), as SSE. For toolmesh agents, which say in Consul meta that they
 * serve 2026-07-28: no session, nothing to negotiate. Failures are the SDK's own error types
 * (ProtocolError for the agent's JSON-RPC error, SdkHttpError for an HTTP refusal, SdkError
 * RequestTimeout), so the caller classifies them exactly as on the SDK's path.
 */
export async function directToolCall(c: DirectCall): Promise<CallToolResult | InputRequiredResult> {
  const id = nextId++;
  const progressToken = c.onProgress ? `p${id}` : undefined;
  // One controller and one timer per call (the caller's signal followed by a listener, not
  // AbortSignal.any; the idle and total limits as one deadline): on the hot path of every hop.
  const limits = new CallLimits(c);
  const onProgress = (p: Progress) => {
    limits.progressed();
    c.onProgress?.(p);
  };
  const signal = limits.signal;
  try {
    const pending = request(c.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": REVISION,
        "mcp-method": "tools/call",
        "mcp-name": c.params.name,
        ...(c.token ? { authorization: `Bearer ${c.token}` } : {}),
      },
      body: requestBody(c, id, progressToken),
      signal,
      dispatcher,
    });
    c.onSent?.();
    return resultOf(await readAnswer(await pending, id, progressToken, onProgress), id, c);
  } catch (e) {
    if (limits.timedOut && !c.signal.aborted) throw limits.signal.reason as Error;
    if (c.signal.aborted) throw (c.signal.reason as Error) ?? e;
    throw e;
  } finally {
    limits.done();
  }
}

/**
 * A call's signal: aborted by its caller's signal, or with the SDK's RequestTimeout once it
 * has been silent for `idleTimeoutMs` (progress restarts that) or has run `totalTimeoutMs`.
 */
class CallLimits {
  private readonly controller = new AbortController();
  private readonly caller: AbortSignal;
  private readonly idleMs: number;
  private readonly endsAt: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  timedOut = false;

  constructor(c: DirectCall) {
    this.caller = c.signal;
    this.idleMs = Math.max(1, c.idleTimeoutMs);
    this.endsAt = Date.now() + Math.max(1, c.totalTimeoutMs);
    if (c.signal.aborted) this.controller.abort(c.signal.reason);
    else c.signal.addEventListener("abort", this.follow, { once: true });
    this.arm();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Progress proves the agent is working: the idle limit starts again (the total one holds). */
  progressed(): void {
    clearTimeout(this.timer);
    this.arm();
  }

  /** The call is over: the timer and the listener go. */
  done(): void {
    clearTimeout(this.timer);
    this.caller.removeEventListener("abort", this.follow);
  }

  private readonly follow = () => this.controller.abort(this.caller.reason);

  private arm(): void {
    const wait = Math.max(1, Math.min(this.idleMs, this.endsAt - Date.now()));
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new SdkError(SdkErrorCode.RequestTimeout, "Request timed out"));
    }, wait);
  }
}

/** The request's body: the envelope in `_meta`, the arguments as they came (raw) or serialised here. */
function requestBody(c: DirectCall, id: number, progressToken: string | undefined): string {
  const { arguments: args, ...rest } = c.params;
  const params = {
    ...rest,
    // The caller's own _meta keys win (the gateway passes on its client's capabilities).
    _meta: {
      "io.modelcontextprotocol/protocolVersion": REVISION,
      "io.modelcontextprotocol/clientInfo": c.clientInfo,
      "io.modelcontextprotocol/clientCapabilities": c.capabilities,
      ...c.params._meta,
      ...(progressToken ? { progressToken } : {}),
    },
  };
  const argsText = isRaw(args) ? args.rawJson : JSON.stringify(args);
  return `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"arguments":${argsText},${JSON.stringify(params).slice(1)}}`;
}

/** The agent's JSON-RPC answer to request `id`: one JSON body, or the response event of an SSE stream (progress passed on meanwhile). */
async function readAnswer(
  res: Dispatcher.ResponseData,
  id: number,
  progressToken: string | undefined,
  onProgress: (p: Progress) => void,
): Promise<JsonRpcMessage | undefined> {
  if (res.statusCode < 200 || res.statusCode >= 300) {
    const text = await res.body.text();
    // A JSON-RPC error answered with an HTTP status (a missing client capability is 400): the agent's answer.
    const answer = jsonRpcError(text, id);
    if (answer && res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 401 && res.statusCode !== 404)
      throw new ProtocolError(answer.code, answer.message, answer.data);
    throw new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `Error POSTing to endpoint: ${text}`, { status: res.statusCode, text });
  }
  if (!String(res.headers["content-type"] ?? "").startsWith("text/event-stream")) {
    const text = await res.body.text();
    const message = JSON.parse(text) as JsonRpcMessage;
    // Its text kept for a proxy that passes it on (the gateway), if it has the agent's shape.
    if (typeof message === "object" && message !== null) keepRawResult(message.result, message, text, id);
    return message;
  }
  for await (const m of sseMessages(res.body)) {
    if (m.method === "notifications/progress" && m.params?.["progressToken"] === progressToken) {
      const { progressToken: _token, ...p } = m.params as Progress & { progressToken: unknown };
      onProgress(p);
    } else if (m.id === id && ("result" in m || "error" in m)) return m;
  }
  return undefined;
}

/** The call's result from the agent's answer; its JSON-RPC error, an answer to another request or an input request nobody can answer are errors. */
function resultOf(message: JsonRpcMessage | undefined, id: number, c: DirectCall): CallToolResult | InputRequiredResult {
  if (!message || typeof message !== "object" || message.id !== id)
    throw new SdkError(SdkErrorCode.InvalidResult, "The agent's answer is not a response to this call.");
  if (!message.error && (typeof message.result !== "object" || message.result === null || Array.isArray(message.result)))
    throw new SdkError(SdkErrorCode.InvalidResult, "The agent's answer is not a response to this call.");
  if (message.error) throw new ProtocolError(message.error.code, message.error.message, message.error.data);
  const result = message.result as CallToolResult | InputRequiredResult;
  if ((result as { resultType?: string }).resultType === "input_required" && !c.allowInputRequired)
    throw new SdkError(
      SdkErrorCode.UnsupportedResultType,
      "Unsupported result type 'input_required' for tools/call: this caller answers no input requests.",
    );
  return result;
}

function isRaw(value: unknown): value is RawJson {
  return typeof value === "object" && value !== null && typeof (value as RawJson).rawJson === "string";
}

/** The JSON-RPC error in a body, if it is the answer to request `id`. */
function jsonRpcError(text: string, id: number): JsonRpcMessage["error"] {
  try {
    const m = JSON.parse(text) as JsonRpcMessage;
    return m.id === id && m.error && typeof m.error.code === "number" ? m.error : undefined;
  } catch {
    return undefined;
  }
}

/** The JSON-RPC messages of an SSE body, as they arrive. */
async function* sseMessages(body: AsyncIterable<Buffer | string>): AsyncGenerator<JsonRpcMessage> {
  let buffer = "";
  const decoder = new TextDecoder(); // a character split across chunks stays whole
  for await (const chunk of body) {
    buffer += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = event
        .split(/\r?\n/)
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) yield JSON.parse(data) as JsonRpcMessage;
    }
  }
}
