import type { ServerResponse } from "node:http";

/** A JSON body with its length. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(text)) });
  res.end(text);
}

/** A request refused before any handler saw it (requestCheck.ts), with its error's data. */
export function sendRefusal(
  res: ServerResponse,
  r: { status: number; code: number; message: string; data?: unknown; id: string | number | null },
  headers: Record<string, string> = {},
): void {
  sendJson(
    res,
    r.status,
    { jsonrpc: "2.0", error: { code: r.code, message: r.message, ...(r.data !== undefined ? { data: r.data } : {}) }, id: r.id },
    headers,
  );
}

/** A JSON-RPC error response (id null: the request could not be read or was refused before dispatch). */
export function sendJsonRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
  id: string | number | null = null,
): void {
  sendJson(res, status, { jsonrpc: "2.0", error: { code, message }, id }, headers);
}
