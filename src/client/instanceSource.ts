import type { Catalog, CatalogAgent, CatalogInstance } from "../discovery/catalog.ts";
import { mayFailOver, type DatacenterFailover } from "../discovery/failover.ts";
import { MeshError } from "../protocol/errors.ts";

/** Where a call's instances were found: this datacenter (no `datacenter`), or the failover one named. */
export interface Found {
  instances: CatalogInstance[];
  datacenter?: string;
}

/**
 * Where a caller finds an agent's instances: this datacenter's live catalog, else (for a
 * read-only tool, with failover datacenters set: MESH_FAILOVER_DCS) another datacenter's.
 * When there is none, the error says why and what to do.
 */
export class InstanceSource {
  private readonly catalog: Catalog;
  private readonly failover: DatacenterFailover | undefined;
  /** The Consul the catalog reads, for the error that says where no instance was found. */
  private readonly consulUrl: string;

  constructor(catalog: Catalog, failover: DatacenterFailover | undefined, consulUrl: string) {
    this.catalog = catalog;
    this.failover = failover;
    this.consulUrl = consulUrl;
  }

  /**
   * The agent's usable instances, waiting for discovery no longer than the deadline: this
   * datacenter's, else (for a read-only tool, with failover datacenters set) another's.
   */
  async find(agent: string, tool: string, deadline: number, signal?: AbortSignal): Promise<Found> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new MeshError("TIMEOUT", `Discovery of agent "${agent}" did not finish before the call's deadline; nothing was sent.`, {
              retryable: true,
              details: { agent },
            }),
          ),
        Math.max(0, deadline - Date.now()),
      );
    });
    const cancelled = signal
      ? new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true }))
      : undefined;
    try {
      const instances = await Promise.race([this.catalog.instances(agent), expired, ...(cancelled ? [cancelled] : [])]);
      if (instances.length > 0) return { instances };
      if (!this.failover) throw this.noInstance(agent);
      const { found, tried } = await Promise.race([this.failover.lookup(agent), expired, ...(cancelled ? [cancelled] : [])]);
      if (!found) throw this.noInstance(agent, ` None in the failover datacenters either (${tried.join("; ")}).`);
      if (!mayFailOver(found.tools, tool)) throw failoverRefused(agent, tool, found.datacenter);
      return { instances: found.instances, datacenter: found.datacenter };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The agent as a failover datacenter has it: undefined when no failover datacenter is set or none has it. */
  async failoverAgent(agent: string): Promise<(CatalogAgent & { datacenter: string }) | undefined> {
    const found = this.failover ? (await this.failover.lookup(agent)).found : undefined;
    if (!found) return undefined;
    return {
      name: agent,
      datacenter: found.datacenter,
      tags: found.instances[0]?.tags ?? [],
      instances: found.instances,
      unusable: [],
      tools: found.tools,
      toolsHash: found.instances[0]?.meta["tools_hash"],
      description: found.instances[0]?.meta["description"],
      toolsError: undefined,
    };
  }

  /** No usable instance: those registered but unusable and why, or none registered (and whether Consul could be asked). */
  noInstance(agent: string, more = ""): MeshError {
    const outage = this.catalog.lastError
      ? ` Consul is unreachable (${this.catalog.lastError}); the last-known catalog has none either.`
      : "";
    const unusable = this.catalog.agent(agent)?.unusable ?? [];
    if (unusable.length > 0) {
      return new MeshError(
        "NO_HEALTHY_INSTANCE",
        `Agent "${agent}" has no usable instance: ${unusable.map((u) => `${u.id} (${u.url}) ${u.reason}`).join("; ")}. Fix or deregister it ("mesh deregister ${unusable[0]!.id}").`,
        { retryable: true, details: { agent, unusable } },
      );
    }
    return new MeshError(
      "NO_HEALTHY_INSTANCE",
      `No healthy instance of agent "${agent}" is registered in Consul at ${this.consulUrl}.${outage}${more} Start one (mesh serve ${agent}) or check "mesh agents".`,
      { retryable: true, details: { agent } },
    );
  }
}

/** A state-changing call that only another datacenter could serve: refused, never sent. */
function failoverRefused(agent: string, tool: string, datacenter: string): MeshError {
  return new MeshError(
    "NO_HEALTHY_INSTANCE",
    `No healthy instance of agent "${agent}" in this datacenter, and ${agent}.${tool} is not read-only, so it is not sent to ${datacenter}: ` +
      `Consul KV (idempotency claims, bookings, task records) is per datacenter, and a state-changing call run there could neither be ` +
      `deduplicated against this one's records nor seen by its readers. Nothing was sent. Start an instance of ${agent} here, or call it in ${datacenter} directly.`,
    { retryable: false, details: { agent, tool, failoverDatacenter: datacenter, failoverRefused: "not read-only" } },
  );
}
