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
