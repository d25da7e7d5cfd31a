import type { LoggingLevel, Server } from "@modelcontextprotocol/server";
import { ClientPool } from "../client/pool.ts";
import type { GatewayCore } from "./core.ts";
import type { View } from "./views.ts";

/**
 * A 2025-era session's own upstream connections, opened only when it needs them: when its
 * client can answer server requests (sampling, elicitation, roots) or has set a log level.
 * They speak 2025-11-25 too, a session per instance, so whatever an agent asks of its client
 * (a server request, or an input_required result its SDK turns into one) and every log
 * message comes back on this session's own connection, is relayed to the client, and the
 * answer goes back to the replica that asked. A session that needs none of that shares the
 * gateway's 2026-07-28 connections; resource updates come through the gateway's shared
 * subscriptions either way.
 */
export function relayPoolFor(gateway: GatewayCore, server: Server, view: View, logLevel: () => LoggingLevel | undefined): Relay {
  let pool: ClientPool | undefined;
  const needed = () => {
    if (pool || logLevel() !== undefined) return true;
    const caps = server.getClientCapabilities() ?? {};
    return Boolean(caps.sampling || caps.elicitation || caps.roots);
  };
  const get = () => {
    if (!needed()) return undefined;
    const caps = server.getClientCapabilities() ?? {};
    pool ??= new ClientPool({
      clientName: "toolmesh-gateway",
      // The gateway's own mesh credentials: a client's token is never passed on.
      token: gateway.mesh.tokenFor,
      legacyOnly: true,
      capabilities: {
        ...(caps.sampling ? { sampling: caps.sampling } : {}),
        ...(caps.elicitation ? { elicitation: caps.elicitation } : {}),
        ...(caps.roots ? { roots: {} } : {}),
      },
      configure: (client) => {
        if (caps.sampling)
          client.setRequestHandler("sampling/createMessage", (req, ctx) => server.createMessage(req.params, { signal: ctx.mcpReq.signal }));
        if (caps.elicitation)
          client.setRequestHandler("elicitation/create", (req, ctx) => server.elicitInput(req.params, { signal: ctx.mcpReq.signal }));
        if (caps.roots) client.setRequestHandler("roots/list", (_req, ctx) => server.listRoots(undefined, { signal: ctx.mcpReq.signal }));
        const ignore = () => undefined;
        client.setNotificationHandler("notifications/message", (n) => void server.sendLoggingMessage(n.params).catch(ignore));
        if (view.kind !== "dynamic") {
          client.setNotificationHandler("notifications/resources/list_changed", () => void server.sendResourceListChanged().catch(ignore));
          client.setNotificationHandler("notifications/prompts/list_changed", () => void server.sendPromptListChanged().catch(ignore));
        }
      },
      onConnected: async (client) => {
        const level = logLevel();
        if (level !== undefined && client.getServerCapabilities()?.logging) await client.setLoggingLevel(level);
      },
      logger: gateway.logger,
    });
    return pool;
  };
  return { get, close: () => void pool?.closeAll() };
}

export interface Relay {
  /** The session's own connections, if it needs them now. */
  get(): ClientPool | undefined;
  close(): void;
}
