import type { Command } from "commander";
import { MeshClient } from "../../src/client/meshClient.ts";
import { consulSettings } from "../../src/consul/settings.ts";
import { ConsulClient } from "../../src/consul/client.ts";
import type { CatalogAgent } from "../../src/discovery/catalog.ts";
import { MeshError } from "../../src/protocol/errors.ts";
import { UsageError } from "../common/errors.ts";

/** Options every command that talks to the mesh accepts. */
export interface MeshFlags {
  consul?: string;
  token?: string;
  json?: boolean;
}

export function addMeshOptions(cmd: Command): Command {
  return cmd
    .option("--consul <addr>", "Consul HTTP address (env CONSUL_HTTP_ADDR)")
    .option("--token <token>", "Consul ACL token (env CONSUL_HTTP_TOKEN)")
    .option("--json", "machine-readable output");
}

export interface MeshSession {
  consul: ConsulClient;
  mesh: MeshClient;
}

/**
 * How much of the catalog a command loads before it runs: "all" (every agent and its tools;
 * each tool list bounded by the catalog's tools timeout), "on-demand" (only the agents the
 * command asks for), or "none".
 */
export type CatalogNeed = "all" | "on-demand" | "none";

/**
 * Connects to Consul (failing at once, with the address and what to do, when it is
 * unreachable), loads the catalog the command needs, runs `fn`, and closes everything.
 * Bearer tokens in the environment are checked first: a malformed one is a usage error
 * naming its variable, before anything is sent.
 */
export async function withMesh<T>(
  flags: MeshFlags,
  fn: (s: MeshSession) => Promise<T>,
  options: { catalog?: CatalogNeed } = {},
): Promise<T> {
  const catalog = options.catalog ?? "all";
  const consul = new ConsulClient(consulSettings({ address: flags.consul, token: flags.token }));
  let mesh: MeshClient | undefined;
  try {
    mesh = new MeshClient({ consul, callerName: "mesh-cli", catalogMode: catalog === "all" ? "all" : "on-demand" });
    const leader = await consul.leader({ timeoutMs: 3_000 });
    if (catalog === "all") {
      await mesh.start();
      // An outage is said as one (exit 3), never as an empty mesh or an unknown agent.
      const failed = mesh.catalog.lastError;
      if (failed !== undefined) throw consulDown(consul, leader, failed);
    }
    return await fn({ consul, mesh });
  } finally {
    await mesh?.close();
    consul.destroy();
  }
}

/**
 * The catalog entry of an agent a command names, waiting for its discovery until
 * `deadline` (epoch ms). An agent Consul does not know is a usage error (exit 2) that lists
 * the agents; one that is registered with no usable instance is a mesh error (exit 3):
 * the infrastructure, not the command, is wrong.
 */
export async function requireAgent(session: MeshSession, name: string, deadline: number): Promise<CatalogAgent> {
  const { mesh, consul } = session;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new MeshError("TIMEOUT", `Discovery of agent "${name}" did not finish within the command's deadline; nothing was sent.`, {
            retryable: true,
          }),
        ),
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    await Promise.race([mesh.catalog.instances(name), late]);
  } finally {
    clearTimeout(timer);
  }
  // None healthy here: a failover datacenter's (MESH_FAILOVER_DCS) may serve its read-only tools.
  const here = mesh.catalog.agent(name);
  const remote = here && here.instances.length > 0 ? undefined : await mesh.failoverAgent(name).catch(() => undefined);
  if (remote) return remote;
  const agent = mesh.catalog.agent(name);
  if (agent && agent.instances.length > 0) return agent;
  const failed = mesh.catalog.lastError;
  if (failed !== undefined) throw consulDown(consul, await consul.leader({ timeoutMs: 2_000 }).catch(() => ""), failed);
  const registered = await consul.catalogServices({
    timeoutMs: Math.max(500, deadline - Date.now()),
    retryMs: Math.max(0, deadline - Date.now()),
  });
  if (!(name in registered.value)) {
    const known = Object.entries(registered.value)
      .filter(([, tags]) => tags.includes("mcp"))
      .map(([n]) => n)
      .sort();
    throw new UsageError(`Unknown agent "${name}": Consul has no such service. Agents: ${known.join(", ") || "none"} (see "mesh agents").`);
  }
  const unusable = agent?.unusable ?? [];
  throw new MeshError(
    "NO_HEALTHY_INSTANCE",
    unusable.length > 0
      ? `Agent "${name}" is registered but no instance is usable: ${unusable.map((u) => `${u.id} (${u.url}) ${u.reason}`).join("; ")}.`
      : `Agent "${name}" is registered in Consul but has no instance passing its health check. See "mesh agents" for its instances and their health.`,
    { retryable: true, details: { agent: name } },
  );
}

/** Prints JSON or text to stdout. */
export function print(flags: MeshFlags, json: unknown, text: () => string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(json, null, 2)}\n` : `${text()}\n`);
}

/** Consul answered the probe but could not serve the catalog: an infrastructure failure (exit 3) that says which. */
function consulDown(consul: ConsulClient, leader: string, failed: string): MeshError {
  return new MeshError(
    "CONSUL_UNREACHABLE",
    `Consul at ${consul.address.url} cannot serve the mesh's catalog${leader === "" ? ": its cluster has no leader (an election, or too few Consul servers up)" : ""}: ${failed}. Nothing was sent to any agent; try again once Consul has a leader.`,
    { retryable: true, details: { consul: consul.address.url, ...(leader === "" ? { noLeader: true } : {}) } },
  );
}
