import { SdkHttpError } from "@modelcontextprotocol/client";
import { OVERLOADED_ERROR_CODE } from "../protocol/codes.ts";
import { isMeshError } from "../protocol/errors.ts";
import { ConnectError } from "./pool.ts";

/** Why a request certainly did not run at the agent (so sending it elsewhere is safe). */
export type NotDeliveredReason = "connection-refused" | "not-connected" | "session-unknown" | "draining" | "overloaded";

const REFUSED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);

/**
 * Classifies an error from an MCP call. Only errors that prove the agent never processed
 * the request count: the connection was refused, no MCP connection could be opened, the
 * agent did not know the session (a 2025-11-25 session it evicted or forgot in a restart),
 * or it answered 503 because it is draining or at its concurrency limit (both refuse before
 * starting the call). Anything else (a reset mid-call, a timeout) may have run the tool and
 * returns undefined.
 */
export function notDelivered(e: unknown): NotDeliveredReason | undefined {
  // This caller's own queue for the instance was full: nothing was sent.
  if (isMeshError(e) && e.code === "OVERLOADED") return "overloaded";
  if (e instanceof ConnectError) return "not-connected";
  if (e instanceof SdkHttpError) {
    if (e.status === 404) return "session-unknown";
    if (e.status === 503) return httpBody(e).includes(`"code":${OVERLOADED_ERROR_CODE}`) ? "overloaded" : "draining";
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

/** The response body an HTTP error carried (the SDK keeps it in `data.text`). */
export function httpBody(e: SdkHttpError): string {
  const text = (e.data as { text?: unknown } | undefined)?.text;
  return typeof text === "string" ? text : e.message;
}
