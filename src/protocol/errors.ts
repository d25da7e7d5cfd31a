/**
 * Mesh/infrastructure failures (STYLE.md rule 6). Business failures are tool results with
 * `isError: true`; protocol failures are the SDK's `McpError`; everything that goes wrong
 * in the mesh itself (Consul, discovery, connections, deadlines) is a {@link MeshError}.
 */

/** Stable, machine-readable codes. The CLI maps the class of error to its exit code. */
export type MeshErrorCode =
  | "CONFIG_INVALID"
  | "CONSUL_UNREACHABLE"
  | "CONSUL_FORBIDDEN"
  | "CONSUL_REJECTED"
  /** Consul did not answer whether a conditional write applied, and reading it back could not tell: not retryable blind. */
  | "CONSUL_WRITE_UNKNOWN"
  | "CAS_CONFLICT"
  | "NO_HEALTHY_INSTANCE"
  | "AGENT_UNREACHABLE"
  | "AGENT_DRAINING"
  | "OVERLOADED"
  | "UNAUTHORIZED"
  | "TIMEOUT"
  | "HOP_LIMIT"
  | "DELIVERY_UNKNOWN"
  | "IDEMPOTENCY_CONFLICT"
  | "CLAIM_LOST"
  | "ABORTED";

export interface MeshErrorOptions {
  /** Whether the same operation may succeed if tried again (perhaps elsewhere). */
  retryable?: boolean;
  cause?: unknown;
  /** Structured details for logs and `--json` output (never secrets). */
  details?: Record<string, unknown>;
}

export class MeshError extends Error {
  override readonly name = "MeshError";
  readonly code: MeshErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: MeshErrorCode, message: string, options: MeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = Object.freeze({ ...options.details });
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, retryable: this.retryable, ...this.details };
  }
}

/** Type guard that also works across module copies (checks the shape, not the prototype). */
export function isMeshError(e: unknown): e is MeshError {
  return (
    e instanceof MeshError ||
    (typeof e === "object" &&
      e !== null &&
      (e as { name?: unknown }).name === "MeshError" &&
      typeof (e as { code?: unknown }).code === "string")
  );
}

/** The message of any thrown value, for logs and error text. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
