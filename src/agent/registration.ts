import type { ConsulClient, ServiceRegistration } from "../consul/client.ts";
import type { Logger } from "../logger.ts";
import { advertisedHost, type AgentConfig } from "./config.ts";
import type { AgentDefinition } from "./definition.ts";
import { Registrar } from "./registrar.ts";

/** An agent instance as a Consul service: its address, tags, meta and the HTTP check of its /healthz at the advertised address. */
export function serviceRegistration(
  def: AgentDefinition<unknown>,
  config: AgentConfig,
  instance: { id: string; port: number; meta: Record<string, string> },
): ServiceRegistration {
  const address = advertisedHost(config);
  return {
    id: instance.id,
    name: def.name,
    address,
    port: instance.port,
    tags: ["mcp", ...def.intents],
    meta: instance.meta,
    check: {
      name: `${def.name} MCP health`,
      http: `http://${address.includes(":") ? `[${address}]` : address}:${instance.port}/healthz`,
      interval: config.checkInterval,
      timeout: "2s",
      deregisterCriticalServiceAfter: config.deregisterAfter,
    },
  };
}

/**
 * The registrar of an instance, not started yet; none unless the agent registers. Its own
 * health endpoint is checked at the advertised address first: it proves Consul's check will
 * reach it, and lets the check start passing instead of waiting critical for its first run
 * (up to one interval, randomly staggered).
 */
export async function registrarFor(
  consul: ConsulClient,
  registration: ServiceRegistration,
  config: AgentConfig,
  log: Logger,
): Promise<Registrar | undefined> {
  if (!config.register) return undefined;
  if (registration.check) {
    const healthy = await selfCheck(registration.check.http!);
    if (healthy) registration.check.status = "passing";
    else
      log.warn(
        { url: registration.check.http },
        "own health endpoint is not reachable at the advertised address; Consul's check will fail. Set --advertise-host to an address Consul can reach",
      );
  }
  return new Registrar({ consul, registration, reconcileIntervalMs: config.reconcileIntervalMs, logger: log });
}

async function selfCheck(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
