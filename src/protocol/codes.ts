/**
 * Every JSON-RPC error code toolmesh sends or reads, in one place. MCP's own codes come
 * from the SDK; these are toolmesh's, chosen below -32020 (the 2026-07-28 revision reserves
 * -32020..-32099 for the protocol) and above -32099.
 */

/** The instance is shutting down (HTTP 503): nothing ran; call another instance. */
export const DRAINING_ERROR_CODE = -32_010;
/** The call exceeded its hop limit. */
export const HOP_LIMIT_ERROR_CODE = -32_012;
/** The call's deadline passed (before it arrived, or while it ran). */
export const DEADLINE_ERROR_CODE = -32_013;
/** The instance runs as many calls as it may (HTTP 503): nothing ran; try another. */
export const OVERLOADED_ERROR_CODE = -32_014;
/** The call with this idempotency key is still running elsewhere and did not finish in time. */
export const IN_PROGRESS_ERROR_CODE = -32_015;
/** The idempotency key was first used for another tool or other arguments; nothing ran. */
export const IDEMPOTENCY_CONFLICT_ERROR_CODE = -32_016;
/**
 * The agent could not do its work because the mesh failed under it (Consul unreachable,
 * another agent down): `data` carries the MeshError's code and whether retrying may succeed.
 */
export const MESH_FAILURE_ERROR_CODE = -32_017;

/**
 * The call's signed identity (who it is for) is forged, expired or made for another agent
 * kind: nothing ran. A bug or an attack, never a reason to retry.
 */
export const IDENTITY_ERROR_CODE = -32_018;
/**
 * The caller may not call this tool (the gateway's policy): `data` names the missing
 * permission, the caller's scopes and the trace. Not retryable with the same credentials.
 */
export const FORBIDDEN_ERROR_CODE = -32_019;
/**
 * The caller is over its quota for this tool (the gateway's rate limits): nothing ran;
 * `data.retryAfterMs` says when the same call will be accepted.
 */
export const RATE_LIMITED_ERROR_CODE = -32_011;

/** Exit codes of every toolmesh process and of the mesh CLI, one per kind of failure (STYLE.md rule 6). */
/** JSON-RPC code for a capability the request's client did not declare (SEP-2575). */
export const MISSING_REQUIRED_CLIENT_CAPABILITY = -32021;

export const EXIT = Object.freeze({
  OK: 0,
  /** A tool answered with isError (a business failure). */
  TOOL_ERROR: 1,
  /** Bad flags, arguments or configuration. */
  USAGE: 2,
  /** Consul, discovery, connections, deadlines, protocol errors from an agent: the mesh itself failed. */
  MESH: 3,
  /** `mesh ask` planned something that changes data and was not confirmed (nothing was changed). */
  NOT_CONFIRMED: 4,
  /** A bug in toolmesh (an error that is none of the above); please report it. */
  INTERNAL: 70,
  /** Interrupted twice (Ctrl-C during shutdown). */
  INTERRUPTED: 130,
});
