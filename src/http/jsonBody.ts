import type { IncomingMessage, ServerResponse } from "node:http";
import { bodyDepthProblem } from "../protocol/limits.ts";
import { keepRawBody } from "./rawBody.ts";
import { sendJsonRpcError } from "./responses.ts";

/**
 * Reads and parses a JSON body of at most `maxBytes` (413 past it, by its Content-Length or
 * as it streams), refusing hostile nesting before parsing (400) and text that is not JSON
 * (400, parse error). Answers the request itself, and returns undefined, on bad input.
 */
export async function readJsonBody(req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > maxBytes) {
    req.resume();
    sendJsonRpcError(res, 413, -32_600, `Request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes.`);
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      sendJsonRpcError(res, 413, -32_600, `Request body exceeds the limit of ${maxBytes} bytes.`);
      req.destroy();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return parseJsonBody(req, res, Buffer.concat(chunks).toString("utf8"));
}

/** The body's value, its text kept for the request (rawBody.ts); undefined after answering a bad one. */
function parseJsonBody(req: IncomingMessage, res: ServerResponse, text: string): unknown {
  // Before parsing and before anything walks the value: hostile nesting never reaches a recursive step.
  const tooDeep = bodyDepthProblem(text);
  if (tooDeep) {
    sendJsonRpcError(res, 400, -32_600, `Invalid request: ${tooDeep}.`);
    return undefined;
  }
  try {
    const body = JSON.parse(text) as unknown;
    keepRawBody(req, text);
    return body;
  } catch (e) {
    sendJsonRpcError(res, 400, -32_700, `Parse error: the body is not valid JSON (${(e as Error).message}).`);
    return undefined;
  }
}
