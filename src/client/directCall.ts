import {
  ProtocolError,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  type CallToolResult,
  type ClientCapabilities,
  type InputRequiredResult,
} from "@modelcontextprotocol/client";
import { request } from "undici";
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
  // Raw arguments go in as they are; everything else is serialised here.
  const argsText = isRaw(args) ? args.rawJson : JSON.stringify(args);
  const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"arguments":${argsText},${JSON.stringify(params).slice(1)}}`;
  const timeout = new AbortController();
  const expire = () => timeout.abort(new SdkError(SdkErrorCode.RequestTimeout, "Request timed out"));
  let idle = setTimeout(expire, Math.max(1, c.idleTimeoutMs));
  const total = setTimeout(expire, Math.max(1, c.totalTimeoutMs));
  const signal = AbortSignal.any([c.signal, timeout.signal]);
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
      body,
      signal,
      dispatcher,
    });
    c.onSent?.();
    const res = await pending;
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const text = await res.body.text();
      // A JSON-RPC error answered with an HTTP status (a missing client capability is 400): the agent's answer.
      const answer = jsonRpcError(text, id);
      if (answer && res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 401 && res.statusCode !== 404)
        throw new ProtocolError(answer.code, answer.message, answer.data);
      throw new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `Error POSTing to endpoint: ${text}`, { status: res.statusCode, text });
    }
    let message: JsonRpcMessage | undefined;
    if (String(res.headers["content-type"] ?? "").startsWith("text/event-stream")) {
      // Events until the response: progress resets the idle timer.
      for await (const m of sseMessages(res.body)) {
        if (m.method === "notifications/progress" && m.params?.["progressToken"] === progressToken) {
          clearTimeout(idle);
          idle = setTimeout(expire, Math.max(1, c.idleTimeoutMs));
          const { progressToken: _token, ...p } = m.params as Progress & { progressToken: unknown };
          c.onProgress?.(p);
        } else if (m.id === id && ("result" in m || "error" in m)) {
          message = m;
          break;
        }
      }
    } else {
      message = JSON.parse(await res.body.text()) as JsonRpcMessage;
    }
    if (!message || message.id !== id) throw new SdkError(SdkErrorCode.InvalidResult, "The agent's answer is not a response to this call.");
    if (message.error) throw new ProtocolError(message.error.code, message.error.message, message.error.data);
    const result = message.result as CallToolResult | InputRequiredResult;
    if ((result as { resultType?: string }).resultType === "input_required" && !c.allowInputRequired)
      throw new SdkError(
        SdkErrorCode.UnsupportedResultType,
        "Unsupported result type 'input_required' for tools/call: this caller answers no input requests.",
      );
    return result;
  } catch (e) {
    if (timeout.signal.aborted && !c.signal.aborted) throw timeout.signal.reason as Error;
    if (c.signal.aborted) throw (c.signal.reason as Error) ?? e;
    throw e;
  } finally {
    clearTimeout(idle);
    clearTimeout(total);
  }
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
