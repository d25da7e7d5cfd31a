/**
 * The wire's names: the `_meta` keys and extension ids toolmesh reads and writes, in one place
 * at the bottom so every layer (serving, client, agent, gateway) agrees on them.
 */

/** Keys of `_meta` the MCP specification reserves for the protocol (the request envelope). */
export const RESERVED_META_PREFIX = "io.modelcontextprotocol/";
/** A 2026-07-28 request's protocol revision, in its envelope. */
export const PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion";
/** A 2026-07-28 request's client, in its envelope. */
export const SERVER_INFO_META = "io.modelcontextprotocol/serverInfo";
/** A 2026-07-28 request's log level, in its envelope. */
export const LOG_LEVEL_META = "io.modelcontextprotocol/logLevel";
/** Where a 2026-07-28 request's envelope declares the client's capabilities. */
export const CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities";

/** The Tasks extension (SEP-2663), negotiated per request on 2026-07-28. */
export const TASKS_EXTENSION = "io.modelcontextprotocol/tasks";
/** The request envelope of a caller that can take a task handle (and may ask tasks/*). */
export const TASKS_ENVELOPE: Readonly<Record<string, unknown>> = Object.freeze({
  [CLIENT_CAPABILITIES_META]: { extensions: { [TASKS_EXTENSION]: {} } },
});

/** Prefix of toolmesh's own keys in `params._meta` (MCP reserves un-prefixed names). */
export const META_PREFIX = "io.toolmesh/";
/** The `_meta` key of a call's idempotency key. */
export const IDEMPOTENCY_KEY_META = `${META_PREFIX}idempotency-key`;
/** The `_meta` key of the signed identity assertion. */
export const IDENTITY_META = `${META_PREFIX}identity`;
/**
 * The key in `_meta` through which an intermediary (the gateway) names its own client in an
 * open mesh (no MESH_TOKEN: nothing is authenticated). With mesh tokens it is ignored: only a
 * signed identity (IDENTITY_META) names a client.
 */
export const PRINCIPAL_META = `${META_PREFIX}principal`;
