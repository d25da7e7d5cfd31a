/**
 * A tools/call refused with a JSON-RPC error rather than answered with a tool result (an
 * idempotency key reused for another request, a keyed call still running elsewhere).
 * Thrown inside the call pipeline; sent as the error response.
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
}
