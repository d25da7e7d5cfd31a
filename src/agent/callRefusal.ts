import { HOP_LIMIT_ERROR_CODE, MESH_FAILURE_ERROR_CODE } from "../protocol/codes.ts";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { isMeshError, type MeshError } from "../protocol/errors.ts";

/**
 * A tools/call answered with a JSON-RPC error rather than a tool result: the call was
 * refused (hop limit, idempotency conflict) or the mesh failed under it. Thrown inside a
 * tool handler; the kit sends it as an error response.
 */
export class CallRefusal extends Error {
  override readonly name = "CallRefusal";
  readonly code: number;
  readonly data: Record<string, unknown> | undefined;

  constructor(code: number, message: string, data?: Record<string, unknown>) {
    super(message);
    this.code = code;
    this.data = data;
  }

  /** A mesh failure inside a handler, as the error its caller should see. */
  static fromMeshError(e: MeshError): CallRefusal {
    return new CallRefusal(e.code === "HOP_LIMIT" ? HOP_LIMIT_ERROR_CODE : MESH_FAILURE_ERROR_CODE, e.message, {
      code: e.code,
      retryable: e.retryable,
    });
  }
}

/**
 * Where a refusal rides inside the process, from the tool handler (whose results the SDK
 * server turns into tool results) to the context layer that sends it as a JSON-RPC error.
 * Never on the wire.
 */
const REFUSAL_META = "io.toolmesh/refusal";

/** The tool result that stands for a refusal until the context layer sends it as an error. */
export function refusalResult(e: CallRefusal): CallToolResult {
  return {
    isError: true,
    content: [{ type: "text", text: e.message }],
    _meta: { [REFUSAL_META]: { code: e.code, message: e.message, ...(e.data ? { data: e.data } : {}) } },
  };
}

/** The JSON-RPC error a result stands for, if it is a refusal. */
export function refusalOf(result: unknown): { code: number; message: string; data?: Record<string, unknown> } | undefined {
  const meta = (result as { _meta?: Record<string, unknown> } | undefined)?._meta;
  return meta?.[REFUSAL_META] as { code: number; message: string; data?: Record<string, unknown> } | undefined;
}

/** A thrown value as a refusal, when it is one (or a mesh failure). */
export function asRefusal(e: unknown): CallRefusal | undefined {
  if (e instanceof CallRefusal) return e;
  if (isMeshError(e)) return CallRefusal.fromMeshError(e);
  return undefined;
}
