import { OVERLOADED_ERROR_CODE } from "../protocol/codes.ts";
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { isMeshError } from "../protocol/errors.ts";
import { ConnectError } from "./pool.ts";

/** Why a request certainly did not run at the agent (so sending it elsewhere is safe). */
export type NotDeliveredReason = "connection-refused" | "not-connected" | "session-unknown" | "draining" | "overloaded";

const REFUSED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);

/**
 * Classifies an error from an MCP call. Only errors that prove the agent never processed
 * the request count: the connection was refused, the agent did not know the session (it
 * restarted), or it answered 503 because it is draining or at its concurrency limit (both
 * refuse before starting the call). Anything else (a reset mid-call,
 * a timeout) may have run the tool and returns undefined.
 */
export function notDelivered(e: unknown): NotDeliveredReason | undefined {
  // This caller's own queue for the instance was full: nothing was sent.
  if (isMeshError(e) && e.code === "OVERLOADED") return "overloaded";
  // No MCP session could be opened: the request was never sent.
  if (e instanceof ConnectError) return "not-connected";
  if (e instanceof StreamableHTTPError) {
    if (e.code === 404) return "session-unknown";
    if (e.code === 503) return e.message.includes(`"code":${OVERLOADED_ERROR_CODE}`) ? "overloaded" : "draining";
    return undefined;
  }
  let cur: unknown = e;
  for (let depth = 0; cur && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && REFUSED.has(code)) return "connection-refused";
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}
