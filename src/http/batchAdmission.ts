import type { IncomingMessage } from "node:http";

/**
 * Members of a JSON-RPC batch the HTTP layer's admission refused (the batch's tool calls past
 * the concurrency limit), by request id, with the error each gets: the endpoint answers them
 * in the batch's own response, and runs only the rest.
 */
export interface BatchRefusals {
  ids: ReadonlySet<string | number>;
  code: number;
  message: string;
}

const refusals = new WeakMap<IncomingMessage, BatchRefusals>();

export function refuseBatchMembers(req: IncomingMessage, r: BatchRefusals): void {
  refusals.set(req, r);
}

/** The members of this request's batch that must not run, if any. */
export function refusedBatchMembers(req: IncomingMessage): BatchRefusals | undefined {
  return refusals.get(req);
}
