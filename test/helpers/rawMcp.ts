/**
 * The JSON-RPC messages of a text/event-stream body, in order. A resumable stream opens with
 * a priming event (an id and empty data, 2025-11-25 SSE polling): it carries no message.
 */
export function sseMessages<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("data: ") && l.length > "data: ".length)
    .map((l) => JSON.parse(l.slice("data: ".length)) as T);
}

/** The headers every raw request carries. */
export const JSON_AND_SSE = { "content-type": "application/json", accept: "application/json, text/event-stream" } as const;

/**
 * Opens a 2025-11-25 session with a raw initialize POST, as any HTTP client can; returns the
 * headers its requests carry (session id, protocol version).
 */
export async function legacySessionHeaders(url: string, capabilities: Record<string, unknown> = {}): Promise<Record<string, string>> {
  const init = await fetch(url, {
    method: "POST",
    headers: JSON_AND_SSE,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities, clientInfo: { name: "raw", version: "1" } },
    }),
  });
  await init.text();
  return { "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-11-25" };
}
