import type { IncomingMessage } from "node:http";
import { isJsonContentType, SUPPORTED_PROTOCOL_VERSIONS, UnsupportedProtocolVersionError } from "@modelcontextprotocol/server";
import { PROTOCOL_VERSION_META } from "../protocol/keys.ts";
import { header, requestIdOf } from "../http/request.ts";

/** The revisions an endpoint serves without a session (per-request envelope). */
export const MODERN_REVISIONS: readonly string[] = Object.freeze(["2026-07-28"]);
/** The one session revision that allowed JSON-RPC batches: 2025-06-18 removed them. */
export const BATCH_REVISIONS: readonly string[] = Object.freeze(["2025-03-26"]);

/** Why a request is refused before any handler sees it: the HTTP status and the JSON-RPC error. */
export interface Refusal {
  status: number;
  code: number;
  message: string;
  data?: unknown;
  /** The request's id, when the answer may name it (a refusal for the whole HTTP request names none). */
  id: string | number | null;
}

/**
 * The one check of an MCP POST's transport-level shape, run before the fast path and the
 * SDK's path alike, so both accept and refuse the same requests with the same errors:
 *
 * - `Content-Type` must be `application/json` (415), as the SDK's handlers require;
 * - `Accept` must list both `application/json` and `text/event-stream` (406): the
 *   Streamable HTTP transport makes that a MUST for clients (2026-07-28 and 2025-11-25 alike),
 *   since a request's answer may be either;
 * - on 2026-07-28, an envelope whose `MCP-Protocol-Version` (header and body agreeing) names a
 *   revision this endpoint does not serve gets 400 with the UnsupportedProtocolVersionError
 *   (-32022) listing the supported ones, as the revision requires; header and body that
 *   disagree are the SDK's HeaderMismatch (-32020), on either path;
 * - on a 2025 session, an `MCP-Protocol-Version` header naming an unknown revision gets 400
 *   (but on the initialize that opens it), as the SDK's session transport answers it.
 *
 * The standard headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) are the SDK's to
 * check against the body, after this; a task's methods without `Mcp-Name` are first given
 * the one their body implies (taskNameHeader). So what a task's polls may be refused for, its
 * tools/call is refused for too, before anything runs: no task starts whose status would
 * then be refused.
 *
 * Undefined when the request may proceed.
 */
export function requestRefusal(req: IncomingMessage, body: unknown, era: "modern" | "legacy"): Refusal | undefined {
  if (req.method !== "POST") return undefined;
  if (!isJsonContentType(header(req, "content-type")))
    return { status: 415, code: -32_000, message: "Unsupported Media Type: Content-Type must be application/json", id: null };
  const accept = header(req, "accept") ?? "";
  if (!accept.includes("application/json") || !accept.includes("text/event-stream"))
    return {
      status: 406,
      code: -32_000,
      message: "Not Acceptable: Client must accept both application/json and text/event-stream",
      id: null,
    };
  const version = header(req, "mcp-protocol-version");
  if (era === "modern") {
    const claimed = envelopeVersion(body);
    if (claimed !== undefined && claimed === version && !MODERN_REVISIONS.includes(claimed)) {
      const error = new UnsupportedProtocolVersionError({ supported: [...MODERN_REVISIONS], requested: claimed });
      return { status: 400, code: error.code, message: error.message, data: error.data, id: requestIdOf(body) };
    }
    return undefined;
  }
  // As the session transport does: the header is checked on every request but the initialize itself.
  if (version !== undefined && !isInitialize(body) && !SUPPORTED_PROTOCOL_VERSIONS.includes(version))
    return {
      status: 400,
      code: -32_000,
      message: `Bad Request: Unsupported protocol version: ${version} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(", ")})`,
      id: null,
    };
  return undefined;
}

/** The Tasks extension's methods, whose `Mcp-Name` header mirrors `params.taskId`. */
const TASK_METHODS: readonly string[] = Object.freeze(["tasks/get", "tasks/update", "tasks/cancel"]);

/**
 * Gives a 2026-07-28 tasks/get, tasks/update or tasks/cancel that carries no `Mcp-Name` the
 * header its body implies (`params.taskId`, Base64-sentinel encoded where the transport
 * says so), before the SDK's check, which requires it. The Tasks extension asks clients to
 * send it, for intermediaries that route a task's requests on it; some clients do not (the
 * mcp-tasks client of pydantic-ai sends it on tools/call only), and refusing their polls
 * would leave a task they started running unseen and uncancellable. Absent, the header has
 * nothing to disagree with: the body is the one source of truth, and toolmesh routes on it
 * (any replica answers for a task). A header that is present is left as it is, so one that
 * disagrees with the body is still refused (-32020). Returns whether it added the header.
 */
export function taskNameHeader(req: IncomingMessage, body: unknown): boolean {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return false;
  const m = body as { method?: unknown; id?: unknown; params?: { taskId?: unknown } };
  if (typeof m.method !== "string" || !TASK_METHODS.includes(m.method) || m.id === undefined) return false;
  const taskId = typeof m.params === "object" && m.params !== null ? m.params.taskId : undefined;
  if (typeof taskId !== "string" || req.headers["mcp-name"] !== undefined) return false;
  req.headers["mcp-name"] = headerValue(taskId);
  return true;
}

/** A value as the Streamable HTTP transport carries it in a header: as it is if it can be, else `=?base64?…?=`. */
function headerValue(value: string): string {
  const plain = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(value) && !(value.startsWith("=?base64?") && value.endsWith("?="));
  return plain ? value : `=?base64?${Buffer.from(value, "utf8").toString("base64")}?=`;
}

/** The revision a 2026-07-28 request's envelope claims, if it is a string. */
function envelopeVersion(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const meta = (body as { params?: { _meta?: Record<string, unknown> } }).params?._meta;
  const v = typeof meta === "object" && meta !== null ? meta[PROTOCOL_VERSION_META] : undefined;
  return typeof v === "string" ? v : undefined;
}

function isInitialize(body: unknown): boolean {
  return (Array.isArray(body) ? body : [body]).some((m) => (m as { method?: unknown } | null)?.method === "initialize");
}
