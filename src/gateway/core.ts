import type { LoggingLevel, Server } from "@modelcontextprotocol/server";
import type { MeshClient } from "../client/meshClient.ts";
import type { Logger } from "../logger.ts";
import type { RecentCalls } from "./callLog.ts";

/**
 * What the forwarding path and the relay need of the gateway. The Gateway class implements it;
 * forward.ts and relay.ts depend on this, not on the class, so nothing below the gateway imports it.
 */
export interface GatewayCore {
  readonly mesh: MeshClient;
  /** The calls through the gateway, for the console. */
  readonly calls: RecentCalls;
  readonly logger: Logger;
  readonly idleTimeoutMs: number;
  readonly maxCallMs: number;
}

/** A 2025-era session a call came on: its client's capabilities and the log level it set travel with the call. */
export interface LegacySession {
  server: Server;
  logLevel: () => LoggingLevel | undefined;
}
