import type { Command } from "commander";
import { MeshClient } from "../../src/client/meshClient.ts";
import { DEFAULT_CONSUL_ADDR } from "../../src/consul/address.ts";
import { ConsulClient } from "../../src/consul/client.ts";

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
 * Connects to Consul (failing at once, with the address and what to do, when it is
 * unreachable), loads the live catalog, runs `fn`, and closes everything.
 */
export async function withMesh<T>(flags: MeshFlags, fn: (s: MeshSession) => Promise<T>, options: { catalog?: boolean } = {}): Promise<T> {
  const address = flags.consul ?? process.env["CONSUL_HTTP_ADDR"] ?? DEFAULT_CONSUL_ADDR;
  const token = flags.token ?? process.env["CONSUL_HTTP_TOKEN"] ?? undefined;
  const consul = new ConsulClient({ address, token });
  const mesh = new MeshClient({ consul, callerName: "mesh-cli", catalogMode: "all" });
  try {
    await consul.leader({ timeoutMs: 3_000 });
    if (options.catalog !== false) await mesh.start();
    return await fn({ consul, mesh });
  } finally {
    await mesh.close();
    consul.destroy();
  }
}

/** Prints JSON or text to stdout. */
export function print(flags: MeshFlags, json: unknown, text: () => string): void {
  process.stdout.write(flags.json ? `${JSON.stringify(json, null, 2)}\n` : `${text()}\n`);
}
