import { ProtocolError, ProtocolErrorCode, type ClientCapabilities, type ServerContext } from "@modelcontextprotocol/server";
import { CLIENT_CAPABILITIES_META } from "../protocol/keys.ts";
import type { ToolCall } from "./tools.ts";

/*
 * What a tool's handler gets of its request (ToolCall): progress reporting, what the client
 * can answer, and, for a task, the context that outlives the request.
 */

/** Progress notifications to the caller, if its request asked for them (a progress token); a no-op otherwise. */
export function progressOf(sdk: ServerContext): ToolCall["progress"] {
  const token = sdk.mcpReq._meta?.progressToken;
  return async (progress, total, message) => {
    if (token === undefined) return;
    await sdk.mcpReq.notify({
      method: "notifications/progress",
      params: { progressToken: token, progress, ...(total !== undefined ? { total } : {}), ...(message ? { message } : {}) },
    });
  };
}

/** The client's capabilities: the request's envelope declares them (2026-07-28), else the session's initialize did. */
export function clientCapabilitiesOf(sdk: ServerContext, sessionCapabilities: () => ClientCapabilities): ClientCapabilities {
  const envelope = sdk.mcpReq.envelope as Record<string, unknown> | undefined;
  return envelope && CLIENT_CAPABILITIES_META in envelope
    ? (envelope[CLIENT_CAPABILITIES_META] as ClientCapabilities)
    : sessionCapabilities();
}

/** The request context a task's handler sees once its request has been answered: no stream to write to, its own signal and input responses. */
export function detachedContext(
  sdk: ServerContext,
  inputResponses: Record<string, unknown> | undefined,
  signal: AbortSignal,
): ServerContext {
  const gone = () =>
    Promise.reject(
      new ProtocolError(
        ProtocolErrorCode.InternalError,
        "This call runs as a task: no server requests; return inputRequired(...) instead.",
      ),
    );
  return {
    ...sdk,
    mcpReq: {
      ...sdk.mcpReq,
      signal,
      ...(inputResponses ? { inputResponses } : {}),
      send: gone,
      notify: async () => undefined,
      log: async () => undefined,
      elicitInput: gone,
      requestSampling: gone,
    },
  } as unknown as ServerContext;
}
