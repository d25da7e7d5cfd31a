import type { Readable } from "node:stream";
import { Agent, request } from "undici";

/**
 * One connection pool for every MCP client transport of this process. Timeouts are off:
 * a tool call may legitimately send nothing for minutes, and the caller's deadline (or the
 * gateway's idle timeout) is what ends it, not the HTTP layer.
 */
export const dispatcher = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });

/** Statuses whose responses have no body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * A `fetch` for the MCP SDK's StreamableHTTPClientTransport built on undici's `request`
 * rather than Node's WHATWG `fetch`: measured here, a toolmesh caller reaches about 1.7× the
 * throughput at concurrency 64 and about 25% lower p50 at concurrency 1 (the global fetch's
 * Request/Response machinery is most of an MCP client's CPU). Redirects are not followed
 * (the SDK decides about them), bodies stream as they arrive (SSE).
 */
export const meshFetch = (async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  const method = (init.method ?? "GET").toUpperCase();
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((value, key) => (headers[key] = value));
  const res = await request(url, {
    method: method as "GET",
    headers,
    body: typeof init.body === "string" || init.body instanceof Uint8Array ? init.body : init.body == null ? null : String(init.body),
    signal: init.signal ?? undefined,
    dispatcher,
  });
  const out = new Headers();
  for (const [key, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.append(key, v);
    else out.set(key, value);
  }
  if (NULL_BODY.has(res.statusCode) || method === "HEAD") {
    res.body.resume();
    return new Response(null, { status: res.statusCode, headers: out });
  }
  return new Response(webBody(res.body), { status: res.statusCode, headers: out });
}) as typeof fetch;

/**
 * A web ReadableStream over a Node body stream that tolerates every order of events a peer
 * can cause. Node's `Readable.toWeb` throws `ERR_INVALID_STATE` from inside a stream event
 * (an uncaught exception: the process dies) when data arrives after the reader cancelled
 * (the SDK cancels an SSE body when a session ends: idle expiry, eviction, a server
 * restart). Here a cancelled or finished stream drops late data, and cancelling destroys
 * the socket's body so nothing more arrives. Backpressure: the body pauses while the
 * stream's queue is full and resumes when the reader pulls.
 */
export function webBody(body: Readable): ReadableStream<Uint8Array> {
  let done = false;
  const finish = () => {
    const was = done;
    done = true;
    return !was;
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        body.on("data", (chunk: Buffer) => {
          if (done) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 1) <= 0) body.pause();
        });
        body.on("end", () => finish() && controller.close());
        body.on("error", (e: Error) => finish() && controller.error(e));
        // A body destroyed without 'end' or 'error' (the connection went away): not a clean end.
        body.on("close", () => finish() && controller.error(new Error("the response body closed before it ended")));
      },
      pull() {
        if (!done) body.resume();
      },
      cancel() {
        done = true;
        body.destroy();
      },
    },
    { highWaterMark: 16 },
  );
}
