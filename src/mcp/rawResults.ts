import { SERVER_INFO_META } from "../protocol/keys.ts";

/**
 * The text of tool results as an agent sent them, so a proxy can pass a result on without
 * serialising it again. For a result `r` kept here, `head + "}"` is the JSON of `r` without
 * its `_meta` (the agent's serverInfo, the one member a hop replaces), exactly as the agent
 * wrote it. Held weakly: a result forgotten is a text forgotten.
 */
const heads = new WeakMap<object, string>();

/** The `_meta` an agent's 2026-07-28 result ends with: its serverInfo alone. */
const META_TAIL = `,"_meta":{${JSON.stringify(SERVER_INFO_META)}:`;

/**
 * Remembers the text of `result`, parsed from `body`, an agent's JSON answer to request `id`,
 * if the answer has the one shape a toolmesh agent writes for a complete result:
 * `{"result":{…,"_meta":{"io.modelcontextprotocol/serverInfo":…}},"jsonrpc":"2.0","id":<id>}`,
 * with nothing else in `_meta`, nothing else at the top, and content present. Any other
 * answer (a hop report, a task, an input request, another layout) is not remembered, and is
 * serialised again by whoever passes it on.
 */
export function keepRawResult(result: unknown, message: Record<string, unknown>, body: string, id: number): void {
  if (typeof result !== "object" || result === null) return;
  const r = result as { resultType?: unknown; content?: unknown; _meta?: Record<string, unknown> };
  if (r.resultType !== "complete" || r.content === undefined || !r._meta) return;
  const metaKeys = Object.keys(r._meta);
  if (metaKeys.length !== 1 || metaKeys[0] !== SERVER_INFO_META || Object.keys(message).length !== 3) return;
  const suffix = `}},"jsonrpc":"2.0","id":${id}}`;
  if (!body.startsWith(`{"result":{`) || !body.endsWith(suffix)) return;
  const cut = body.lastIndexOf(META_TAIL);
  if (cut < 10) return;
  // The serverInfo must be exactly what the text says it is: then the cut is the member's.
  if (body.slice(cut + META_TAIL.length, body.length - suffix.length) !== JSON.stringify(r._meta[SERVER_INFO_META])) return;
  heads.set(result, body.slice(10, cut));
}

/** The text kept for a result, if any (see keepRawResult). */
export function rawResultHead(result: object): string | undefined {
  return heads.get(result);
}

/**
 * Carries the text of `from` over to `to`, a copy of it without its `_meta` (what a proxy
 * strips), so `to` too can be passed on without serialising it again.
 */
export function carryRawResult(from: object, to: object): void {
  const head = heads.get(from);
  if (head !== undefined && !("_meta" in to)) heads.set(to, head);
}
